// boot_timer: runs one boot command and reports, in milliseconds from just before its fork,
// when a marker line appeared on its stdout, when msb reported its first KVM_RUN
// (MSB_BOOT_TIMING "msb-timing: first-kvm-run monotonic_ns=N" on stderr), and when it exited.
//
//   boot_timer MARKER TIMEOUT_S -- COMMAND [ARGS...]
//   → marker_ms=3712.4 first_run_ms=14.2 exit_ms=3760.0 status=0
//
// Standalone (no msb libraries) so bench/boot.sh can build it statically and run it anywhere,
// including inside tests/vmm/nested-kvm.sh.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

constexpr double kAfterMarkerMs = 5000;

static double now_ms() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return double(t.tv_sec) * 1e3 + double(t.tv_nsec) / 1e6;
}

int main(int argc, char** argv) {
    if (argc < 5 || std::strcmp(argv[3], "--") != 0) {
        (void)std::fprintf(stderr, "usage: %s MARKER TIMEOUT_S -- COMMAND [ARGS...]\n", argv[0]);
        return 2;
    }
    std::string marker = argv[1];
    double timeout_ms = std::atof(argv[2]) * 1e3;
    int out[2], err[2];
    if (pipe(out) || pipe(err)) return 2;
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]);
        close(err[0]);
        setenv("MSB_BOOT_TIMING", "1", 1);
        execvp(argv[4], argv + 4);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    double marker_ms = -1, first_run_ms = -1;
    std::string out_text, err_text;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        double left = timeout_ms - (now_ms() - t0);
        // Once the marker is out, give the VM a few seconds to finish on its own (the guest's
        // init exits right after printing it), then stop waiting: only the marker is timed.
        if (marker_ms >= 0) left = std::min(left, marker_ms + kAfterMarkerMs - (now_ms() - t0));
        if (left <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        if (poll(fds, 2, int(left) + 1) < 0) continue;
        for (auto& p : fds) {
            if (p.fd < 0 || !(p.revents & (POLLIN | POLLHUP))) continue;
            char buffer[4096];
            ssize_t n = read(p.fd, buffer, sizeof buffer);
            if (n <= 0) {
                close(p.fd);
                p.fd = -1;
                --open_fds;
                continue;
            }
            std::string& text = p.fd == out[0] ? out_text : err_text;
            text.append(buffer, size_t(n));
            if (p.fd == out[0] && marker_ms < 0 && text.find(marker) != std::string::npos)
                marker_ms = now_ms() - t0;
            auto at = err_text.find("first-kvm-run monotonic_ns=");
            if (first_run_ms < 0 && at != std::string::npos) {
                double ns =
                    std::atof(err_text.c_str() + at + std::strlen("first-kvm-run monotonic_ns="));
                first_run_ms = ns / 1e6 - t0;
            }
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    double exit_ms = now_ms() - t0;
    std::printf("marker_ms=%.1f first_run_ms=%.2f exit_ms=%.1f status=%d\n", marker_ms,
                first_run_ms, exit_ms,
                WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    if (marker_ms < 0)
        (void)std::fprintf(stderr, "boot_timer: no marker; output:\n%s\n%s\n", out_text.c_str(),
                           err_text.c_str());
    return 0;
}
