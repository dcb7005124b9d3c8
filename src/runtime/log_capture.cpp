// stderr → pipe → thread → RotatingLog("host").
#include "runtime/log_capture.h"

#include <fcntl.h>
#include <unistd.h>

#include <thread>

#include "base/unique_fd.h"
#include "runtime/rotating_log.h"

namespace msb::runtime {

namespace {
std::thread g_log_thread;  // joined by finish_log_capture()
}  // namespace

Status start_log_capture(const std::string& log_dir, int tee_fd) {
    auto log = TRY(RotatingLog::open(log_dir, "host"));
    UniqueFd devnull(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    if (!devnull) return Error::from_errno("open /dev/null");
    if (::dup2(devnull.get(), STDOUT_FILENO) < 0) return Error::from_errno("redirect stdout");
    auto pipe = TRY(Pipe::create());
    if (::dup2(pipe.write.get(), STDERR_FILENO) < 0) return Error::from_errno("redirect stderr");
    g_log_thread = std::thread([log = std::move(log), in = std::move(pipe.read), tee_fd]() mutable {
        char buf[8192];
        for (;;) {
            ssize_t n = ::read(in.get(), buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return;
            (void)log.write(std::string_view(buf, static_cast<size_t>(n)));
            if (tee_fd >= 0) (void)write_all(tee_fd, buf, static_cast<size_t>(n));
        }
    });
    return {};
}

void finish_log_capture() {
    if (!g_log_thread.joinable()) return;
    UniqueFd devnull(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    // fd 2 held the pipe's only write end: replacing it lets the reader see end-of-file.
    if (devnull && ::dup2(devnull.get(), STDERR_FILENO) >= 0) g_log_thread.join();
}

}  // namespace msb::runtime
