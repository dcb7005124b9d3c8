// UniqueFd: sole owner of a file descriptor; closes it on destruction. Move-only.
#pragma once

#include <utility>

#include "base/result.h"

namespace msb {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : m_fd(fd) {}
    ~UniqueFd() { reset(); }

    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : m_fd(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }

    int get() const { return m_fd; }
    bool valid() const { return m_fd >= 0; }
    explicit operator bool() const { return valid(); }

    // Gives up ownership without closing.
    [[nodiscard]] int release() { return std::exchange(m_fd, -1); }
    // Closes the current descriptor (if any) and takes `fd`.
    void reset(int fd = -1);

    // dup(2) with O_CLOEXEC.
    Result<UniqueFd> duplicate() const;

private:
    int m_fd = -1;
};

// pipe2(O_CLOEXEC | flags): {read end, write end}.
struct Pipe {
    UniqueFd read;
    UniqueFd write;
    static Result<Pipe> create(int flags = 0);
};

// Sets or clears O_NONBLOCK.
Status set_nonblocking(int fd, bool nonblocking = true);

// write(2) until everything is written or an error other than EINTR occurs.
Status write_all(int fd, const void* data, size_t size);

}  // namespace msb
