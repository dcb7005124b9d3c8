// UniqueFd and small fd helpers.
#include "base/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

namespace msb {

void UniqueFd::reset(int fd) {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = fd;
}

Result<UniqueFd> UniqueFd::duplicate() const {
    int fd = ::fcntl(m_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return Error::from_errno("dup fd");
    return UniqueFd(fd);
}

Result<Pipe> Pipe::create(int flags) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | flags) < 0) return Error::from_errno("pipe2");
    return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Status set_nonblocking(int fd, bool nonblocking) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) return Error::from_errno("fcntl F_GETFL");
    flags = nonblocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (::fcntl(fd, F_SETFL, flags) < 0) return Error::from_errno("fcntl F_SETFL");
    return {};
}

Status write_all(int fd, const void* data, size_t size) {
    const auto* p = static_cast<const char*>(data);
    while (size > 0) {
        ssize_t n = ::write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("write");
        }
        p += n;
        size -= static_cast<size_t>(n);
    }
    return {};
}

}  // namespace msb
