// Error formatting and the MUST() failure path.
#include "base/result.h"

#include <cstring>

namespace msb {

Error Error::from_errno(std::string_view what, int code) {
    std::string message(what);
    message += ": ";
    message += std::strerror(code);
    return Error(std::move(message), code);
}

Error Error::with_context(std::string_view context) const {
    std::string message(context);
    message += ": ";
    message += m_message;
    return Error(std::move(message), m_code);
}

namespace detail {
void must_failed(const char* expr, const Error& error, const char* file, int line) {
    (void)std::fprintf(stderr, "%s:%d: MUST(%s) failed: %s\n", file, line, expr,
                       error.message().c_str());
    std::abort();
}
}  // namespace detail

}  // namespace msb
