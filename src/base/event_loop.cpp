// EventLoop: epoll dispatch with stable tokens so that a registration removed (or replaced by
// a new one on the same fd number) during a dispatch round never receives a stale event.
#include "base/event_loop.h"

#include <atomic>

namespace msb {

namespace {
constexpr uint64_t kWakeToken = 0;
constexpr int kMaxEvents = 64;
}  // namespace

struct EventLoop::Shared {
    explicit Shared(EventFd wake_fd) : wake(std::move(wake_fd)) {}
    EventFd wake;
    std::atomic<bool> stop_requested{false};
    std::mutex mutex;
    std::vector<std::function<void()>> posted;  // GUARDED_BY(mutex)
};

Result<EventLoop> EventLoop::create() {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) return Error::from_errno("epoll_create1");
    UniqueFd epoll(fd);
    auto wake = TRY(EventFd::create());
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeToken;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.fd(), &ev) < 0)
        return Error::from_errno("epoll_ctl add wake eventfd");
    return EventLoop(std::move(epoll), std::make_unique<Shared>(std::move(wake)));
}

EventLoop::EventLoop(UniqueFd epoll, std::unique_ptr<Shared> shared)
    : m_epoll(std::move(epoll)), m_shared(std::move(shared)) {}
EventLoop::EventLoop(EventLoop&&) noexcept = default;
EventLoop& EventLoop::operator=(EventLoop&&) noexcept = default;
EventLoop::~EventLoop() = default;

Status EventLoop::add(int fd, uint32_t events, Callback callback) {
    if (m_token_by_fd.count(fd))
        return Error("event loop: fd " + std::to_string(fd) + " already added");
    uint64_t token = m_next_token++;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = token;
    if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
        return Error::from_errno("epoll_ctl add fd " + std::to_string(fd));
    m_by_token[token] = std::make_shared<Registration>(Registration{fd, std::move(callback)});
    m_token_by_fd[fd] = token;
    return {};
}

Status EventLoop::modify(int fd, uint32_t events) {
    auto it = m_token_by_fd.find(fd);
    if (it == m_token_by_fd.end())
        return Error("event loop: fd " + std::to_string(fd) + " not added");
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = it->second;
    if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_MOD, fd, &ev) < 0)
        return Error::from_errno("epoll_ctl mod fd " + std::to_string(fd));
    return {};
}

void EventLoop::remove(int fd) {
    auto it = m_token_by_fd.find(fd);
    if (it == m_token_by_fd.end()) return;
    // The fd may already be closed by its owner; epoll forgets closed fds by itself.
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, fd, nullptr);
    m_by_token.erase(it->second);
    m_token_by_fd.erase(it);
}

Result<int> EventLoop::run_once(std::chrono::milliseconds timeout) {
    epoll_event events[kMaxEvents];
    int n = ::epoll_wait(m_epoll.get(), events, kMaxEvents, static_cast<int>(timeout.count()));
    if (n < 0) {
        if (errno == EINTR) return 0;
        return Error::from_errno("epoll_wait");
    }
    int dispatched = 0;
    for (int i = 0; i < n; ++i) {
        uint64_t token = events[i].data.u64;
        if (token == kWakeToken) {
            m_shared->wake.drain();
            std::vector<std::function<void()>> posted;
            {
                std::lock_guard lock(m_shared->mutex);
                posted.swap(m_shared->posted);
            }
            for (auto& fn : posted) {
                fn();
                ++dispatched;
            }
            continue;
        }
        auto it = m_by_token.find(token);
        if (it == m_by_token.end()) continue;  // removed earlier in this round
        std::shared_ptr<Registration> reg =
            it->second;  // keeps the callback alive if it removes itself
        reg->callback(events[i].events);
        ++dispatched;
    }
    return dispatched;
}

Status EventLoop::run() {
    while (!m_shared->stop_requested.load(std::memory_order_acquire))
        TRY(run_once(std::chrono::milliseconds(-1)));
    // Functions posted before stop() still run, even when stop() came before the first round.
    TRY(run_once(std::chrono::milliseconds(0)));
    return {};
}

void EventLoop::stop() {
    m_shared->stop_requested.store(true, std::memory_order_release);
    m_shared->wake.signal();
}

void EventLoop::post(std::function<void()> fn) {
    {
        std::lock_guard lock(m_shared->mutex);
        m_shared->posted.push_back(std::move(fn));
    }
    m_shared->wake.signal();
}

bool EventLoop::stopped() const { return m_shared->stop_requested.load(std::memory_order_acquire); }

}  // namespace msb
