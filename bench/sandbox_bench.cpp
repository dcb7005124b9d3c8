// sandbox_bench: the sandbox-level benchmarks, through the public SDK as a user would call it.
// Prints one `BENCH {json}` line per figure (name, unit, raw samples, how to read it) for
// bench/run.py, which aggregates them; anything else on stdout is commentary. A measurement that
// cannot be taken is an error: a message on stderr and exit status 1, never a zero.
//
//   sandbox_bench main --guest-timer PATH [--boots K]
//       K sequential boots of a sandbox with an ext4 block root and a virtio-fs volume (create →
//       ready on the host; kernel → core.ready on the guest's clock), then on the last one:
//       exec and fs round trips, the guest's own spawn time, VMM memory, stream throughput, and
//       virtio-fs and virtio-blk against the host.
//   sandbox_bench density --guest-timer PATH [--max N] [--baseline-ms MS]
//       1..N sandboxes of main's configuration created at once: time until all are ready, and
//       whether an exec round trip stays within 2x of one sandbox alone (MS, measured by
//       `main`; else N = 1 here).
//
// Sizes default to what the issue asks on hardware KVM and are scaled down on the PVM host,
// where every guest kernel instruction is emulated (docs/performance.md); MSB_BENCH_* override.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "msb/sandbox.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

bool on_pvm() { return fs::exists("/sys/module/kvm_pvm"); }

[[noreturn]] void fail(const std::string& what) {
    (void)std::fprintf(stderr, "sandbox_bench: %s\n", what.c_str());
    std::exit(1);
}

// A whole number ≥ 1 (sizes, counts): anything else is a usage error, never a zero figure.
uint64_t positive(const std::string& text, const std::string& what) {
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value == 0)
        fail(what + " must be a whole number of at least 1, not \"" + text + "\"");
    return value;
}

uint64_t setting(const char* name, uint64_t hardware, uint64_t pvm) {
    if (const char* v = std::getenv(name); v && *v) return positive(v, name);
    return on_pvm() ? pvm : hardware;
}

// Quoted for /bin/sh.
std::string quote(const std::string& text) {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

template <typename T>
T must(msb::Result<T> r, const std::string& what) {
    if (!r.ok()) fail(what + ": " + r.error().message());
    return std::move(r).value();
}

void must(const msb::Status& s, const std::string& what) {
    if (!s.ok()) fail(what + ": " + s.error().message());
}

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// One figure for the runner. `better`: "lower" or "higher".
void report(const std::string& name, const std::string& unit, const std::vector<double>& samples,
            const std::string& better, const std::string& what) {
    if (samples.empty()) fail(name + ": no samples");
    nlohmann::json j = {
        {"name", name}, {"unit", unit}, {"samples", samples}, {"better", better}, {"what", what}};
    std::printf("BENCH %s\n", j.dump().c_str());
    std::fflush(stdout);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// "12.3s" / "450ms" / "800us" → milliseconds (base/time.h format_duration_ns).
std::optional<double> parse_duration_ms(const std::string& text) {
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (end == text.c_str()) return std::nullopt;
    std::string unit(end);
    if (unit.starts_with("ms")) return v;
    if (unit.starts_with("us") || unit.starts_with("µs")) return v / 1e3;
    if (unit.starts_with("ns")) return v / 1e6;
    if (unit.starts_with("s")) return v * 1e3;
    return std::nullopt;
}

// Kernel start → core.ready on the guest's clock, from the agent's line in the guest log
// ("agent ready in X (init Y; Z since kernel start)").
double kernel_to_ready_ms(const std::string& sandbox_dir) {
    std::string log;
    auto at = std::string::npos;
    for (int i = 0; i < 50 && at == std::string::npos; i++) {  // the log may trail by a moment
        if (i) std::this_thread::sleep_for(100ms);
        log = slurp(fs::path(sandbox_dir) / "logs" / "guest.log");
        at = log.rfind("agent ready in ");
    }
    if (at == std::string::npos)
        fail("no 'agent ready' line in " + sandbox_dir + "/logs/guest.log");
    auto semi = log.find("; ", at);
    auto since = log.find(" since kernel start", at);
    if (semi == std::string::npos || since == std::string::npos || since < semi)
        fail("cannot read the agent's ready line: " + log.substr(at, 120));
    auto ms = parse_duration_ms(log.substr(semi + 2, since - semi - 2));
    if (!ms) fail("cannot read the agent's ready time: " + log.substr(at, 120));
    return *ms;
}

// kB fields of /proc/PID/status.
uint64_t status_kib(pid_t pid, const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with(field + ":")) {
            std::stringstream value(line.substr(field.size() + 1));
            uint64_t kib = 0;
            if (value >> kib) return kib;
        }
    }
    fail("no " + field + " in /proc/" + std::to_string(pid) + "/status");
}

// kB of guest RAM resident in the sandbox process, from /proc/PID/smaps. Guest RAM is one
// host mapping of the memfd "msb-guest-ram", with the kernel's and the initramfs's whole pages
// mapped over parts of it from their files (copy-on-write, docs/vmm.md): those VMAs lie between
// the memfd's first and last VMA (guest RAM starts and ends with memfd pages: nothing is loaded
// at address 0, and the per-boot config archive is copied in after the initramfs file).
struct GuestRam {
    uint64_t rss_kib = 0;   // all resident guest pages
    uint64_t anon_kib = 0;  // of those, kernel/initramfs pages the guest wrote (private copies)
};
GuestRam guest_ram_kib(pid_t pid) {
    struct Vma {
        uint64_t start = 0, end = 0, rss_kib = 0, anon_kib = 0;
        bool memfd = false;
    };
    std::vector<Vma> vmas;
    std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
    std::string line;
    while (std::getline(in, line)) {
        uint64_t start = 0, end = 0;
        auto dash = line.find('-');
        auto space = line.find(' ');
        if (dash != std::string::npos && space != std::string::npos && dash < space &&
            std::from_chars(line.data(), line.data() + dash, start, 16).ec == std::errc() &&
            std::from_chars(line.data() + dash + 1, line.data() + space, end, 16).ec ==
                std::errc()) {
            vmas.push_back({start, end, 0, 0, line.find("msb-guest-ram") != std::string::npos});
        } else if (line.starts_with("Rss:") && !vmas.empty()) {
            std::stringstream value(line.substr(4));
            value >> vmas.back().rss_kib;
        } else if (line.starts_with("Anonymous:") && !vmas.empty()) {
            std::stringstream value(line.substr(10));
            value >> vmas.back().anon_kib;
        }
    }
    uint64_t low = UINT64_MAX, high = 0;
    for (const auto& v : vmas)
        if (v.memfd) low = std::min(low, v.start), high = std::max(high, v.end);
    if (high == 0) fail("no msb-guest-ram mapping in /proc/" + std::to_string(pid) + "/smaps");
    GuestRam ram;
    for (const auto& v : vmas) {
        if (v.start < low || v.end > high) continue;
        ram.rss_kib += v.rss_kib;
        ram.anon_kib += v.anon_kib;
    }
    return ram;
}

// The key=value pairs of one guest_timer output line.
std::string field(const std::string& line, const std::string& key) {
    auto at = line.find(key + "=");
    if (at == std::string::npos) fail("guest_timer printed no " + key + ": " + line);
    at += key.size() + 1;
    return line.substr(at, line.find_first_of(" \n", at) - at);
}

double number(const std::string& text) {
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || !(value > 0))
        fail("expected a positive number, got \"" + text + "\"");
    return value;
}

std::vector<double> numbers(const std::string& csv, double scale) {
    std::vector<double> out;
    std::stringstream s(csv);
    std::string item;
    while (std::getline(s, item, ',')) out.push_back(number(item) * scale);
    return out;
}

// guest time / host time of one guest_timer figure.
double ratio(const std::string& guest_line, const std::string& host_line, const std::string& key) {
    return number(field(guest_line, key)) / number(field(host_line, key));
}

// Runs a command in the guest; its stdout, failing loudly on a non-zero exit.
std::string guest_run(msb::Sandbox& sb, const std::string& cmd,
                      const std::vector<std::string>& args) {
    auto out = must(sb.exec(cmd, args), "exec " + cmd);
    if (out.exit_code != 0)
        fail(cmd + " exited " + std::to_string(out.exit_code) + ": " + out.stderr_data);
    return out.stdout_data;
}

std::string host_run(const std::string& command) {
    std::string out;
    FILE* p = ::popen(command.c_str(), "r");
    if (!p) fail("popen " + command);
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, p)) > 0) out.append(buffer, n);
    if (::pclose(p) != 0) fail(command + " failed: " + out);
    return out;
}

// An ext4 image with busybox (every applet) and guest_timer: the main sandbox's block root, so
// that one boot exercises virtio-blk (the root) and virtio-fs (the /data volume).
std::string make_root_image(const fs::path& dir, const std::string& guest_timer, uint64_t mib) {
    const fs::path root = dir / "root";
    fs::create_directories(root / "bin");
    fs::copy_file("/bin/busybox", root / "bin" / "busybox");
    std::stringstream applets(host_run("/bin/busybox --list"));
    for (std::string applet; std::getline(applets, applet);)
        if (!applet.empty() && applet != "busybox")
            fs::create_symlink("busybox", root / "bin" / applet);
    fs::copy_file(guest_timer, root / "bin" / "guest_timer");
    for (const char* d : {"dev", "proc", "sys", "tmp", "run", "etc", "data"})
        fs::create_directories(root / d);
    const std::string image = (dir / "root.ext4").string();
    (void)host_run("/sbin/mke2fs -q -F -t ext4 -d " + quote(root.string()) + " " + quote(image) +
                   " " + std::to_string(mib) + "M 2>&1");
    return image;
}

msb::Sandbox create(const std::string& name, const std::string& share, double* create_ms,
                    const std::string& root_image = "") {
    auto builder = msb::Sandbox::builder(name).cpus(1).memory_mib(128).replace(msb::Replace::Yes);
    if (!share.empty()) builder.volume(share, "/data");
    if (!root_image.empty()) builder.disk(root_image, "raw");
    auto start = Clock::now();
    auto sb = must(builder.create(), "create " + name);
    if (create_ms) *create_ms = ms_since(start);
    return sb;
}

void stop(msb::Sandbox& sb) {
    must(sb.stop(120s), "stop " + sb.name());
    (void)msb::Sandbox::remove(sb.name());
}

std::vector<double> exec_round_trips(msb::Sandbox& sb, size_t count) {
    (void)guest_run(sb, "true", {});  // warm-up
    std::vector<double> ms;
    for (size_t i = 0; i < count; i++) {
        auto start = Clock::now();
        (void)guest_run(sb, "true", {});
        ms.push_back(ms_since(start));
    }
    return ms;
}

// Bytes of guest stdout per second reaching the client.
double stdout_mib_s(msb::Sandbox& sb, uint64_t mib) {
    auto start = Clock::now();
    auto h = must(sb.exec_stream("dd", {"if=/dev/zero", "bs=65536",
                                        "count=" + std::to_string(mib * 16), "status=none"}),
                  "exec dd");
    uint64_t bytes = 0;
    for (;;) {
        auto e = must(h.next_event(600s), "stdout stream");
        if (e.kind == msb::ExecEventKind::Stdout) bytes += e.data.size();
        if (e.kind == msb::ExecEventKind::Exited) {
            if (e.exit_code != 0) fail("dd exited " + std::to_string(e.exit_code));
            break;
        }
    }
    if (bytes != mib << 20) fail("stdout stream: " + std::to_string(bytes) + " bytes arrived");
    return double(mib) / (ms_since(start) / 1e3);
}

double stdin_mib_s(msb::Sandbox& sb, uint64_t mib) {
    const std::string chunk(64 * 1024, 's');
    auto start = Clock::now();
    auto h = must(sb.exec_stream("wc", {"-c"}), "exec wc");
    for (uint64_t i = 0; i < mib * 16; i++) must(h.write_stdin(chunk), "stdin");
    must(h.close_stdin(), "close stdin");
    std::string out;
    for (;;) {
        auto e = must(h.next_event(600s), "stdin stream");
        if (e.kind == msb::ExecEventKind::Stdout) out += e.data;
        if (e.kind == msb::ExecEventKind::Exited) {
            if (e.exit_code != 0) fail("wc -c exited " + std::to_string(e.exit_code));
            break;
        }
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    if (out != std::to_string(mib << 20)) fail("stdin stream: wc counted \"" + out + "\"");
    return double(mib) / (ms_since(start) / 1e3);
}

// This run's scratch directory (root images, shared directories), removed at exit, failures
// included.
fs::path g_work;

const fs::path& work_dir() {
    if (g_work.empty()) {
        std::string tmpl = (fs::temp_directory_path() / "msb-bench-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) fail("mkdtemp " + tmpl + ": " + std::strerror(errno));
        g_work = tmpl;
        std::atexit([] {
            std::error_code ignored;
            fs::remove_all(g_work, ignored);
        });
    }
    return g_work;
}

void run_main(const std::string& guest_timer, int boots) {
    const size_t execs = setting("MSB_BENCH_EXECS", 100, 10);
    const uint64_t stream_mib = setting("MSB_BENCH_STREAM_MIB", 1024, 1);
    const uint64_t fs_mib = setting("MSB_BENCH_FS_MIB", 100, 1);
    const uint64_t device_mib = setting("MSB_BENCH_DEVICE_MIB", 1024, 2);
    const uint64_t walk_files = setting("MSB_BENCH_WALK_FILES", 10000, 200);
    const int reps = static_cast<int>(setting("MSB_BENCH_REPS", 5, 2));  // streams, devices
    const fs::path& work = work_dir();
    const std::string share = (work / "share").string();
    fs::create_directories(share);
    const std::string image = make_root_image(work, guest_timer, 64 + 2 * device_mib);

    // 1. Boot, K times; the last sandbox stays up for the rest.
    std::vector<double> create_ms, kernel_ms;
    std::optional<msb::Sandbox> sandbox;
    for (int i = 0; i < boots; i++) {
        if (sandbox) stop(*sandbox);
        double ms = 0;
        sandbox.emplace(create("bench", share, &ms, image));
        create_ms.push_back(ms);
        auto info = must(msb::Sandbox::inspect("bench"), "inspect");
        kernel_ms.push_back(kernel_to_ready_ms(info.dir));
        std::printf("boot %d: create→ready %.0f ms, kernel→core.ready %.0f ms\n", i + 1, ms,
                    kernel_ms.back());
    }
    msb::Sandbox& sb = *sandbox;
    report("boot.create_to_ready", "ms", create_ms, "lower",
           "SDK create() until the agent's core.ready reached the host (1 vCPU, 128 MiB, ext4 "
           "block root, one virtio-fs volume)");
    report("boot.kernel_to_core_ready", "ms", kernel_ms, "lower",
           "guest kernel start to core.ready, on the guest's clock (agent log)");

    // 4. Memory, before anything else ran in the guest.
    pid_t pid = sb.pid().value_or(0);
    if (pid <= 0) fail("the sandbox has no pid");
    const double rss = double(status_kib(pid, "VmRSS")) / 1024;
    const GuestRam guest_ram = guest_ram_kib(pid);
    const double guest = double(guest_ram.rss_kib) / 1024;
    report("memory.idle_sandbox_rss", "MiB", {rss}, "lower",
           "host RSS of the idle sandbox process, guest memory included");
    report("memory.vmm_overhead", "MiB", {rss - guest}, "lower",
           "sandbox process RSS minus the guest RAM it touched (/proc/PID/smaps: the memfd's "
           "pages and the kernel and initramfs pages mapped into guest RAM)");
    report("memory.vmm_private", "MiB",
           {double(status_kib(pid, "RssAnon") - guest_ram.anon_kib) / 1024},
           "lower",
           "of that, anonymous memory (RssAnon less the guest's copied-on-write kernel and "
           "initramfs pages): what each further sandbox adds; the rest is file pages (msb, "
           "libc, sqlite) shared by every msb process");

    // 3. Exec and fs round trips; the guest's own spawn of the same program.
    auto rtt = exec_round_trips(sb, execs);
    report("exec.true_round_trip", "ms", rtt, "lower", "SDK exec(\"true\") until its exit code");
    {
        auto line = guest_run(sb, "/bin/guest_timer", {"spawn", std::to_string(execs), "true"});
        auto spawn = numbers(field(line, "spawn_us"), 1e-3);
        report("exec.true_guest_spawn", "ms", spawn, "lower",
               "posix_spawn + wait of the same `true`, timed inside the guest");
        report("exec.relay_agent_overhead", "ms", {median(rtt) - median(spawn)}, "lower",
               "median round trip minus median in-guest spawn: relay, agent and protocol");
    }
    {
        (void)must(sb.fs().stat("/"), "fs stat");
        std::vector<double> ms;
        for (size_t i = 0; i < execs; i++) {
            auto start = Clock::now();
            (void)must(sb.fs().stat("/"), "fs stat");
            ms.push_back(ms_since(start));
        }
        report("fs.stat_round_trip", "ms", ms, "lower", "SDK fs().stat(\"/\") round trip");
    }

    // 5. Streams.
    std::vector<double> out_rate, in_rate, write_rate, read_rate;
    for (int i = 0; i < reps; i++) out_rate.push_back(stdout_mib_s(sb, stream_mib));
    report("stream.stdout", "MiB/s", out_rate, "higher",
           std::to_string(stream_mib) + " MiB of guest stdout (dd) received by the SDK client");
    for (int i = 0; i < reps; i++) in_rate.push_back(stdin_mib_s(sb, stream_mib));
    report("stream.stdin", "MiB/s", in_rate, "higher",
           std::to_string(stream_mib) + " MiB written to a guest process's stdin (wc -c)");
    {
        std::string data(fs_mib << 20, '\0');
        for (size_t i = 0; i < data.size(); i++) data[i] = char('a' + i % 26);
        for (int i = 0; i < reps; i++) {
            auto start = Clock::now();
            must(sb.fs().write("/tmp/bench.bin", data), "fs write");
            write_rate.push_back(double(fs_mib) / (ms_since(start) / 1e3));
            start = Clock::now();
            auto back = must(sb.fs().read("/tmp/bench.bin"), "fs read");
            read_rate.push_back(double(fs_mib) / (ms_since(start) / 1e3));
            if (back != data) fail("fs read returned different bytes");
        }
        report("fs.write", "MiB/s", write_rate, "higher",
               std::to_string(fs_mib) + " MiB written through the protocol (guest /tmp)");
        report("fs.read", "MiB/s", read_rate, "higher",
               std::to_string(fs_mib) + " MiB read back through the protocol");
        (void)sb.fs().remove("/tmp/bench.bin");
    }

    // 6. virtio-fs against the host: the same guest_timer binary does the same work on the
    // shared directory from inside the guest and directly on the host.
    {
        std::vector<double> w, r, walk;
        const std::string n = std::to_string(device_mib);
        for (int f = 0; f < int(walk_files); f++) {
            auto dir = fs::path(share) / "tree" / std::to_string(f % 20);
            if (f < 20) fs::create_directories(dir);
            std::ofstream(dir / ("f" + std::to_string(f))) << f;
        }
        for (int i = 0; i < reps; i++) {
            auto g = guest_run(sb, "/bin/guest_timer", {"write", "/data/seq.bin", n});
            auto h = host_run(quote(guest_timer) + " write " + quote(share + "/seq.bin") + " " + n);
            w.push_back(ratio(g, h, "write_us"));
            g = guest_run(sb, "/bin/guest_timer", {"read", "/data/seq.bin"});
            h = host_run(quote(guest_timer) + " read " + quote(share + "/seq.bin"));
            r.push_back(ratio(g, h, "read_us"));
            g = guest_run(sb, "/bin/guest_timer", {"walk", "/data/tree"});
            h = host_run(quote(guest_timer) + " walk " + quote(share + "/tree"));
            if (field(g, "entries") != field(h, "entries"))
                fail("walk: the guest saw " + field(g, "entries") + " entries, the host " +
                     field(h, "entries"));
            walk.push_back(ratio(g, h, "walk_us"));
        }
        report("device.virtiofs_seq_write", "x host", w, "lower",
               n + " MiB sequential write + fsync on a virtio-fs volume, guest time / host time");
        report("device.virtiofs_seq_read", "x host", r, "lower",
               n + " MiB sequential read (host page cache warm), guest time / host time");
        report(
            "device.virtiofs_walk", "x host", walk, "lower",
            std::to_string(walk_files + 20) + " entries: readdir + lstat, guest time / host time");
    }
    // virtio-blk: the ext4 root against the host's own file system. The guest drops its page
    // cache before reading, so its reads reach the device; the host reads warm.
    {
        std::vector<double> w, r;
        const std::string n = std::to_string(device_mib);
        const std::string host_file = (work / "blk.bin").string();
        for (int i = 0; i < reps; i++) {
            auto g = guest_run(sb, "/bin/guest_timer", {"write", "/blk.bin", n});
            auto h = host_run(quote(guest_timer) + " write " + quote(host_file) + " " + n);
            w.push_back(ratio(g, h, "write_us"));
            (void)guest_run(sb, "sh", {"-c", "sync; echo 3 > /proc/sys/vm/drop_caches"});
            g = guest_run(sb, "/bin/guest_timer", {"read", "/blk.bin"});
            h = host_run(quote(guest_timer) + " read " + quote(host_file));
            if (field(g, "bytes") != field(h, "bytes")) fail("blk read: sizes differ");
            r.push_back(ratio(g, h, "read_us"));
        }
        report("device.virtioblk_seq_write", "x host", w, "lower",
               n + " MiB sequential write + fsync on the ext4 block root, guest time / host time");
        report("device.virtioblk_seq_read", "x host", r, "lower",
               n + " MiB sequential read after the guest dropped its caches, guest time / host "
                   "time (host warm)");
    }
    stop(sb);
}

// The sandboxes have the main run's configuration (their own copy of the ext4 root image and a
// virtio-fs volume). `baseline_ms`: the main run's exec round trip, one sandbox alone on an
// otherwise idle host; 0 measures it here as N = 1.
void run_density(const std::string& guest_timer, int max_n, double baseline_ms) {
    const fs::path& work = work_dir();
    const std::string image = make_root_image(work, guest_timer, 64);
    double baseline = baseline_ms;
    int largest = baseline > 0 ? 1 : 0;
    for (int n = baseline > 0 ? 2 : 1; n <= max_n; n++) {
        for (int i = 0; i < n; i++) {
            const auto dir = work / ("d" + std::to_string(i + 1));
            fs::create_directories(dir / "share");
            fs::copy_file(image, dir / "root.ext4", fs::copy_options::overwrite_existing);
        }
        auto start = Clock::now();
        // Detached: a sandbox the SDK starts attached stops when the thread that created it
        // exits (PR_SET_PDEATHSIG), and these are created on short-lived threads. The idle
        // timeout stops them should this program die before it stops them itself.
        std::vector<std::future<msb::Result<msb::Sandbox>>> starting;
        for (int i = 0; i < n; i++) {
            const auto dir = work / ("d" + std::to_string(i + 1));
            starting.push_back(std::async(std::launch::async, [i, dir] {
                return msb::Sandbox::builder("bench-d" + std::to_string(i + 1))
                    .cpus(1)
                    .memory_mib(128)
                    .disk((dir / "root.ext4").string(), "raw")
                    .volume((dir / "share").string(), "/data")
                    .idle_timeout(900)
                    .replace(msb::Replace::Yes)
                    .create_detached();
            }));
        }
        std::vector<msb::Sandbox> all;
        std::string errors;
        for (auto& f : starting) {
            auto sb = f.get();
            if (sb.ok()) {
                all.push_back(std::move(sb).value());
            } else {
                errors += " " + sb.error().message();
            }
        }
        if (!errors.empty()) {
            for (auto& sb : all) (void)sb.kill();
            fail("density " + std::to_string(n) + ": create failed:" + errors);
        }
        double all_ready = ms_since(start);
        std::vector<double> rtt;
        for (auto& sb : all) {
            auto samples = exec_round_trips(sb, 3);
            rtt.insert(rtt.end(), samples.begin(), samples.end());
        }
        std::vector<std::future<msb::Status>> stopping;
        for (auto& sb : all)
            stopping.push_back(std::async(std::launch::async, [&sb] { return sb.stop(120s); }));
        for (size_t i = 0; i < all.size(); i++) {
            auto stopped = stopping[i].get();
            if (!stopped.ok()) fail("stop " + all[i].name() + ": " + stopped.error().message());
            (void)msb::Sandbox::remove(all[i].name());
        }
        const double m = median(rtt);
        if (baseline <= 0) baseline = m;
        const bool responsive = m <= 2 * baseline;
        std::printf("density %d: all ready in %.0f ms; exec round trip %.0f ms (alone %.0f ms)%s\n",
                    n, all_ready, m, baseline, responsive ? "" : " — not responsive");
        report("density.n" + std::to_string(n) + ".all_ready", "ms", {all_ready}, "lower",
               std::to_string(n) +
                   " sandboxes (128 MiB, ext4 root, virtio-fs volume) created at "
                   "once, until all are ready");
        report("density.n" + std::to_string(n) + ".exec_round_trip", "ms", rtt, "lower",
               "exec(\"true\") round trip with " + std::to_string(n) + " sandboxes running");
        if (!responsive) break;
        largest = n;
    }
    report("density.largest_responsive", "sandboxes", {double(largest)}, "higher",
           "largest N (of 1.." + std::to_string(max_n) +
               " tried) whose exec round trip stays within 2x of one sandbox alone");
}

int run(const std::vector<std::string>& args) {
    auto option = [&](const std::string& name, const std::string& fallback) {
        auto it = std::find(args.begin(), args.end(), name);
        return it != args.end() && it + 1 != args.end() ? *(it + 1) : fallback;
    };
    if (::access("/dev/kvm", R_OK | W_OK) != 0) fail("/dev/kvm is not available");
    const std::string timer = option("--guest-timer", "");
    if (!args.empty() && (args[0] == "main" || args[0] == "density") && timer.empty())
        fail(args[0] + " needs --guest-timer PATH");
    if (!args.empty() && args[0] == "main") {
        run_main(timer, static_cast<int>(positive(option("--boots", "1"), "--boots")));
        return 0;
    }
    if (!args.empty() && args[0] == "density") {
        const std::string max = option("--max", "");
        const std::string baseline = option("--baseline-ms", "");
        run_density(timer,
                    static_cast<int>(max.empty() ? setting("MSB_BENCH_DENSITY_MAX", 8, 2)
                                                 : positive(max, "--max")),
                    baseline.empty() ? 0 : number(baseline));
        return 0;
    }
    (void)std::fprintf(stderr,
                       "usage: sandbox_bench main --guest-timer PATH [--boots K] | density "
                       "--guest-timer PATH [--max N] [--baseline-ms MS]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        fail(e.what());
    }
}
