// Result<T>: the one error currency of msb. Every operation that the host, a user or a peer
// can make fail returns a Result; guest-controlled input never reaches abort().
//
//   Result<UniqueFd> open_disk(const std::string& path) {
//       int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
//       if (fd < 0) return Error::from_errno("open disk image " + path);
//       return UniqueFd(fd);
//   }
//   UniqueFd fd = TRY(open_disk(p));
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace msb {

// An error: a message that names the operation and the object, and the errno behind it when
// there is one (0 otherwise).
class Error {
public:
    explicit Error(std::string message, int code = 0)
        : m_message(std::move(message)), m_code(code) {}

    // "<what>: <strerror(code)>", keeping `code` for callers that branch on it.
    static Error from_errno(std::string_view what, int code = errno);

    const std::string& message() const { return m_message; }
    int code() const { return m_code; }

    // Returns a copy whose message is prefixed with "<context>: ".
    Error with_context(std::string_view context) const;

private:
    std::string m_message;
    int m_code;
};

template <typename T>
class [[nodiscard]] Result {
    static_assert(!std::is_reference_v<T>, "Result<T&> is not supported; return a pointer");

public:
    Result(T value) : m_storage(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
    Result(Error error)
        : m_storage(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

    bool ok() const { return m_storage.index() == 0; }
    explicit operator bool() const { return ok(); }

    // REQUIRES: ok().
    T& value() & { return std::get<0>(m_storage); }
    const T& value() const& { return std::get<0>(m_storage); }
    T&& value() && { return std::get<0>(std::move(m_storage)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }

    // REQUIRES: !ok().
    const Error& error() const& { return std::get<1>(m_storage); }
    Error&& error() && { return std::get<1>(std::move(m_storage)); }

    T value_or(T fallback) && { return ok() ? std::move(*this).value() : std::move(fallback); }

private:
    std::variant<T, Error> m_storage;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : m_error(std::move(error)), m_ok(false) {}  // NOLINT: implicit

    bool ok() const { return m_ok; }
    explicit operator bool() const { return ok(); }
    void value() const {}
    const Error& error() const& { return m_error; }
    Error&& error() && { return std::move(m_error); }

private:
    Error m_error{""};
    bool m_ok = true;
};

using Status = Result<void>;

namespace detail {
[[noreturn]] void must_failed(const char* expr, const Error& error, const char* file, int line);
}  // namespace detail

}  // namespace msb

// Evaluates `expr` (a Result); on error returns the error from the enclosing function,
// otherwise yields the value. `__extension__` keeps -Wpedantic quiet about the statement
// expression, which both g++ and clang++ support.
#define TRY(expr)                                               \
    __extension__({                                             \
        auto _msb_try = (expr);                                 \
        if (!_msb_try.ok()) return std::move(_msb_try).error(); \
        std::move(_msb_try).value();                            \
    })

// Like TRY for failures that are bugs in msb itself (our own invariants): aborts with the
// error. Never use on anything the guest, a client or the host environment can cause.
#define MUST(expr)                                                                    \
    __extension__({                                                                   \
        auto _msb_must = (expr);                                                      \
        if (!_msb_must.ok())                                                          \
            ::msb::detail::must_failed(#expr, _msb_must.error(), __FILE__, __LINE__); \
        std::move(_msb_must).value();                                                 \
    })
