// EventFd: an eventfd(2) used to wake a thread or to carry KVM ioeventfd/irqfd signals.
#pragma once

#include <cstdint>

#include "base/unique_fd.h"

namespace msb {

class EventFd {
public:
    enum class Mode { Blocking, NonBlocking };

    static Result<EventFd> create(Mode mode = Mode::NonBlocking);

    // Adds 1 to the counter (wakes a waiter). Safe from any thread and from a signal handler.
    void signal() const;
    // Reads and clears the counter; returns 0 when it was already zero (non-blocking mode).
    uint64_t drain() const;

    int fd() const { return m_fd.get(); }

private:
    explicit EventFd(UniqueFd fd) : m_fd(std::move(fd)) {}
    UniqueFd m_fd;
};

}  // namespace msb
