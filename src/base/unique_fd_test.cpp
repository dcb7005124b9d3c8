#include "base/unique_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "base/event_fd.h"

namespace msb {
namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

TEST(UniqueFd, ClosesOnDestructionAndMove) {
    int raw;
    {
        auto pipe = MUST(Pipe::create());
        raw = pipe.read.get();
        UniqueFd moved = std::move(pipe.read);
        EXPECT_FALSE(pipe.read.valid());
        EXPECT_TRUE(is_open(raw));
    }
    EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFd, ReleaseGivesUpOwnership) {
    auto pipe = MUST(Pipe::create());
    int raw = pipe.write.release();
    pipe.write.reset();
    EXPECT_TRUE(is_open(raw));
    ::close(raw);
}

TEST(UniqueFd, WriteAllWritesEverything) {
    auto pipe = MUST(Pipe::create());
    std::string data(10000, 'x');
    ASSERT_TRUE(write_all(pipe.write.get(), data.data(), data.size()).ok());
    pipe.write.reset();
    std::string got;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(pipe.read.get(), buf, sizeof buf)) > 0)
        got.append(buf, static_cast<size_t>(n));
    EXPECT_EQ(got, data);
}

TEST(UniqueFd, WriteAllReportsBrokenPipe) {
    auto pipe = MUST(Pipe::create());
    pipe.read.reset();
    (void)signal(SIGPIPE, SIG_IGN);
    auto st = write_all(pipe.write.get(), "x", 1);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), EPIPE);
}

TEST(EventFd, SignalThenDrainCounts) {
    auto ev = MUST(EventFd::create());
    EXPECT_EQ(ev.drain(), 0u);
    ev.signal();
    ev.signal();
    EXPECT_EQ(ev.drain(), 2u);
    EXPECT_EQ(ev.drain(), 0u);
}

}  // namespace
}  // namespace msb
