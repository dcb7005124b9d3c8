// EventLoop: a single-threaded epoll dispatcher.
//
//   auto loop = TRY(EventLoop::create());
//   TRY(loop.add(sock.get(), EPOLLIN, [&](uint32_t events) { ... }));
//   loop.run();            // until stop() is called from any thread
//
// Thread model: add/modify/remove and every callback run on the loop's thread; stop() and
// post() are safe from any thread. A callback may remove any registration, itself included.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "base/event_fd.h"
#include "base/unique_fd.h"

namespace msb {

class EventLoop {
public:
    using Callback = std::function<void(uint32_t events)>;

    static Result<EventLoop> create();

    EventLoop(EventLoop&&) noexcept;
    EventLoop& operator=(EventLoop&&) noexcept;
    ~EventLoop();

    // Watches `fd` for `events` (EPOLLIN, EPOLLOUT, ...). The fd must stay open until removed.
    Status add(int fd, uint32_t events, Callback callback);
    Status modify(int fd, uint32_t events);
    void remove(int fd);

    // Dispatches ready events once, waiting at most `timeout` (negative: forever).
    // Returns the number of callbacks run.
    Result<int> run_once(std::chrono::milliseconds timeout);
    // Dispatches until stop().
    Status run();

    // Safe from any thread: makes run() return after the current dispatch round.
    void stop();
    // Safe from any thread: runs `fn` on the loop thread during its next round.
    void post(std::function<void()> fn);

    bool stopped() const;

private:
    struct Shared;
    struct Registration {
        int fd;
        Callback callback;
    };

    EventLoop(UniqueFd epoll, std::unique_ptr<Shared> shared);

    UniqueFd m_epoll;
    std::unique_ptr<Shared> m_shared;
    std::unordered_map<uint64_t, std::shared_ptr<Registration>> m_by_token;
    std::unordered_map<int, uint64_t> m_token_by_fd;
    uint64_t m_next_token = 1;
};

}  // namespace msb
