#include "base/event_loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

namespace msb {
namespace {

using namespace std::chrono_literals;

TEST(EventLoop, DispatchesReadableFd) {
    auto loop = MUST(EventLoop::create());
    auto pipe = MUST(Pipe::create());
    int calls = 0;
    ASSERT_TRUE(loop.add(pipe.read.get(), EPOLLIN,
                         [&](uint32_t ev) {
                             EXPECT_TRUE(ev & EPOLLIN);
                             char c;
                             ASSERT_EQ(::read(pipe.read.get(), &c, 1), 1);
                             ++calls;
                         })
                    .ok());
    EXPECT_EQ(MUST(loop.run_once(0ms)), 0);
    ASSERT_EQ(::write(pipe.write.get(), "a", 1), 1);
    EXPECT_EQ(MUST(loop.run_once(1000ms)), 1);
    EXPECT_EQ(calls, 1);
}

TEST(EventLoop, RejectsDuplicateRegistration) {
    auto loop = MUST(EventLoop::create());
    auto pipe = MUST(Pipe::create());
    ASSERT_TRUE(loop.add(pipe.read.get(), EPOLLIN, [](uint32_t) {}).ok());
    EXPECT_FALSE(loop.add(pipe.read.get(), EPOLLIN, [](uint32_t) {}).ok());
}

TEST(EventLoop, CallbackMayRemoveAnotherRegistrationInTheSameRound) {
    auto loop = MUST(EventLoop::create());
    auto a = MUST(Pipe::create());
    auto b = MUST(Pipe::create());
    int calls = 0;
    auto cb = [&](uint32_t) {
        ++calls;
        loop.remove(a.read.get());
        loop.remove(b.read.get());
    };
    ASSERT_TRUE(loop.add(a.read.get(), EPOLLIN, cb).ok());
    ASSERT_TRUE(loop.add(b.read.get(), EPOLLIN, cb).ok());
    ASSERT_EQ(::write(a.write.get(), "a", 1), 1);
    ASSERT_EQ(::write(b.write.get(), "b", 1), 1);
    MUST(loop.run_once(1000ms));
    EXPECT_EQ(calls, 1);
}

TEST(EventLoop, StopAndPostFromAnotherThread) {
    auto loop = MUST(EventLoop::create());
    bool ran = false;
    std::thread t([&] {
        loop.post([&] { ran = true; });
        loop.stop();
    });
    ASSERT_TRUE(loop.run().ok());
    t.join();
    EXPECT_TRUE(ran);
    EXPECT_TRUE(loop.stopped());
}

}  // namespace
}  // namespace msb
