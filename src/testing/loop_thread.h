// LoopThread: runs an EventLoop on its own thread for tests (the way the VMM's device thread
// does), and lets the test run code on that thread synchronously.
//
//   auto thread = MUST(LoopThread::create());
//   MUST(transport->start(thread->loop()));
//   thread->run_sync([&] { ... on the loop thread ... });
//
// The destructor stops the loop and joins the thread.
#pragma once

#include <functional>
#include <memory>
#include <thread>

#include "base/event_loop.h"

namespace msb::testing {

class LoopThread {
public:
    static Result<std::unique_ptr<LoopThread>> create();
    ~LoopThread();

    EventLoop& loop() { return m_loop; }
    // Runs `fn` on the loop thread and waits for it to finish.
    void run_sync(std::function<void()> fn);

private:
    explicit LoopThread(EventLoop loop) : m_loop(std::move(loop)) {}
    EventLoop m_loop;
    std::thread m_thread;  // last: joined before the loop is destroyed
};

}  // namespace msb::testing
