// Event loop on a thread, for tests.
#include "testing/loop_thread.h"

#include <future>

namespace msb::testing {

Result<std::unique_ptr<LoopThread>> LoopThread::create() {
    EventLoop loop = TRY(EventLoop::create());
    std::unique_ptr<LoopThread> thread(new LoopThread(std::move(loop)));
    LoopThread* self = thread.get();
    thread->m_thread = std::thread([self] { MUST(self->m_loop.run()); });
    return thread;
}

LoopThread::~LoopThread() {
    m_loop.stop();
    if (m_thread.joinable()) m_thread.join();
}

void LoopThread::run_sync(std::function<void()> fn) {
    std::promise<void> done;
    std::future<void> finished = done.get_future();
    m_loop.post([&] {
        fn();
        done.set_value();
    });
    finished.wait();
}

}  // namespace msb::testing
