// EventFd wrapper.
#include "base/event_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace msb {

Result<EventFd> EventFd::create(Mode mode) {
    int flags = EFD_CLOEXEC | (mode == Mode::NonBlocking ? EFD_NONBLOCK : 0);
    int fd = ::eventfd(0, flags);
    if (fd < 0) return Error::from_errno("eventfd");
    return EventFd(UniqueFd(fd));
}

void EventFd::signal() const {
    uint64_t one = 1;
    // A full counter (2^64-2) still wakes the reader, so a failed write loses nothing.
    [[maybe_unused]] ssize_t n = ::write(m_fd.get(), &one, sizeof one);
}

uint64_t EventFd::drain() const {
    uint64_t value = 0;
    if (::read(m_fd.get(), &value, sizeof value) != sizeof value) return 0;
    return value;
}

}  // namespace msb
