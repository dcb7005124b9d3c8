#include "cli/commands.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/time.h"
#include "base/unique_fd.h"
#include "msb/sandbox.h"
#include "sdk/util.h"

namespace msb::cli {
namespace {

using namespace std::chrono_literals;

[[noreturn]] void fail(const std::string& message, int code = 1) {
    std::string line = "msb: " + message;
    if (auto nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
    (void)std::fprintf(stderr, "%s\n", line.c_str());
    (void)std::fflush(stdout);
    std::exit(code);
}

template <typename T>
T check(Result<T> r) {
    if (!r.ok()) fail(r.error().message());
    return std::move(r).value();
}
void check(Status s) {
    if (!s.ok()) fail(s.error().message());
}

// Options shared by run and create.
struct SandboxOptions {
    std::string name, rootfs, disk, memory, idle_timeout, max_duration, kernel, workdir, user,
        hostname;
    uint32_t cpus = 1;
    std::vector<std::string> volumes, tmpfs, env;
    bool replace = false;
};

void add_sandbox_options(CLI::App* cmd, SandboxOptions& o) {
    cmd->add_option("--name", o.name, "Sandbox name (default: generated)");
    cmd->add_option("--rootfs", o.rootfs, "Host directory used as the root filesystem");
    cmd->add_option("--disk", o.disk, "Root disk image PATH[:FORMAT][:ro]");
    cmd->add_option("-c,--cpus", o.cpus, "Virtual CPUs");
    cmd->add_option("-m,--memory", o.memory, "Memory, e.g. 512M, 1G");
    // One value per flag (repeat the flag for more): a flag that took every following word
    // would swallow `--` and the command after it.
    cmd->add_option("-v,--volume", o.volumes, "Share a host directory HOST:GUEST[:ro]")
        ->allow_extra_args(false);
    cmd->add_option("--tmpfs", o.tmpfs, "tmpfs PATH[:SIZE]")->allow_extra_args(false);
    cmd->add_option("-e,--env", o.env, "Environment KEY=VALUE")->allow_extra_args(false);
    cmd->add_option("-w,--workdir", o.workdir, "Working directory in the guest");
    cmd->add_option("-u,--user", o.user, "User in the guest (user[:group] or uid[:gid])");
    cmd->add_option("-H,--hostname", o.hostname, "Guest hostname");
    cmd->add_option("--idle-timeout", o.idle_timeout,
                    "Stop after this much inactivity (30s, 5m, 1h)");
    cmd->add_option("--max-duration", o.max_duration, "Stop after this long (30s, 5m, 1h)");
    cmd->add_option("--kernel", o.kernel, "Guest kernel (default: the cached build)");
    cmd->add_flag("--replace", o.replace, "Replace a stopped sandbox of the same name");
}

SandboxBuilder builder_from(const SandboxOptions& o, const std::string& log_level) {
    SandboxBuilder b(o.name);
    if (!o.name.empty()) check(sdk::validate_name(o.name));
    b.cpus(o.cpus);
    if (!o.memory.empty()) b.memory_mib(check(sdk::parse_memory_mib(o.memory)));
    if (!o.rootfs.empty()) b.rootfs(o.rootfs);
    if (!o.disk.empty()) {
        auto d = check(sdk::parse_disk(o.disk));
        b.disk(d.path, d.format, d.access);
    }
    for (const auto& v : o.volumes) {
        auto s = check(sdk::parse_volume(v));
        b.volume(s.host, s.guest, s.access);
    }
    for (const auto& t : o.tmpfs) {
        auto s = check(sdk::parse_tmpfs(t));
        b.tmpfs(s.path, s.size_bytes);
    }
    for (const auto& e : o.env) {
        auto [k, v] = check(sdk::parse_env(e));
        b.env(k, v);
    }
    if (!o.workdir.empty()) b.workdir(o.workdir);
    if (!o.user.empty()) b.user(o.user);
    if (!o.hostname.empty()) b.hostname(o.hostname);
    if (!o.idle_timeout.empty()) b.idle_timeout(check(sdk::parse_duration_secs(o.idle_timeout)));
    if (!o.max_duration.empty()) b.max_duration(check(sdk::parse_duration_secs(o.max_duration)));
    if (!o.kernel.empty()) b.kernel(o.kernel);
    b.log_level(log_level);
    b.replace(o.replace ? Replace::Yes : Replace::No);
    return b;
}

// Raw mode on a terminal for -t; restored on destruction.
struct RawTerminal {
    termios saved{};
    bool active = false;
    RawTerminal() {
        if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &saved) < 0) return;
        termios raw = saved;
        ::cfmakeraw(&raw);
        active = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    ~RawTerminal() {
        if (active) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    }
};

// Runs a command attached to our stdio; returns its exit code.
int attach(Sandbox& sandbox, const std::vector<std::string>& command, ExecOptions options) {
    if (command.empty()) fail("no command given; pass one after `--`");
    if (options.tty) {
        winsize ws{};
        if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row) {
            options.rows = ws.ws_row;
            options.cols = ws.ws_col;
        }
    }
    auto handle =
        check(sandbox.exec_stream(command[0], {command.begin() + 1, command.end()}, options));
    std::unique_ptr<RawTerminal> raw;
    if (options.tty) raw = std::make_unique<RawTerminal>();
    std::atomic<bool> done{false};
    std::thread input([&] {
        char buf[16384];
        while (!done) {
            pollfd p{STDIN_FILENO, POLLIN, 0};
            int r = ::poll(&p, 1, 100);
            if (r <= 0) continue;
            ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
            if (n <= 0) {
                (void)handle.close_stdin();
                return;
            }
            if (!handle.write_stdin({buf, static_cast<size_t>(n)}).ok()) return;
        }
    });
    int code = 1;
    auto deadline = options.timeout.count() ? Deadline::after(options.timeout) : Deadline::never();
    while (true) {
        auto e =
            handle.next_event(options.timeout.count() ? std::max(deadline.remaining(), 1ms) : 0ms);
        if (!e.ok()) {
            if (e.error().code() == ETIMEDOUT) {
                (void)handle.signal(SIGKILL);
                options.timeout = 0ms;
                (void)std::fprintf(stderr, "msb: command timed out; killed\n");
                continue;
            }
            done = true;
            input.join();
            raw.reset();
            fail(e.error().message());
        }
        if (e->kind == ExecEventKind::Stdout)
            (void)write_all(STDOUT_FILENO, e->data.data(), e->data.size());
        if (e->kind == ExecEventKind::Stderr)
            (void)write_all(STDERR_FILENO, e->data.data(), e->data.size());
        if (e->kind == ExecEventKind::Exited) {
            code = e->exit_code;
            break;
        }
    }
    done = true;
    input.join();
    return code;
}

std::string describe(const SandboxInfo& i) {
    std::string s = i.status;
    if (i.latest_run && i.latest_run->reason && i.status != "Running")
        s += " (" + *i.latest_run->reason + ")";
    return s;
}

nlohmann::json info_json(const SandboxInfo& i) {
    nlohmann::json j;
    j["name"] = i.name;
    j["id"] = i.id;
    j["status"] = i.status;
    j["config"] = nlohmann::json::parse(i.config_json, nullptr, false);
    j["created_at"] = i.created_at.value_or("");
    j["updated_at"] = i.updated_at.value_or("");
    j["pid"] = i.pid ? nlohmann::json(*i.pid) : nlohmann::json(nullptr);
    j["dir"] = i.dir;
    j["agent_sock"] = i.agent_sock;
    if (i.latest_run) {
        const auto& r = *i.latest_run;
        j["latest_run"] = {
            {"id", r.id},
            {"status", r.status},
            {"pid", r.pid ? nlohmann::json(*r.pid) : nlohmann::json(nullptr)},
            {"exit_code", r.exit_code ? nlohmann::json(*r.exit_code) : nlohmann::json(nullptr)},
            {"termination_reason", r.reason ? nlohmann::json(*r.reason) : nlohmann::json(nullptr)},
            {"termination_detail", r.detail ? nlohmann::json(*r.detail) : nlohmann::json(nullptr)},
            {"started_at", r.started_at.value_or("")},
            {"terminated_at", r.terminated_at.value_or("")}};
    }
    return j;
}

// NAME:/path → {NAME, /path}; a host path → {"", path}.
std::pair<std::string, std::string> split_target(const std::string& s) {
    auto colon = s.find(':');
    if (colon == std::string::npos || colon == 0 || s.find('/') < colon) return {"", s};
    return {s.substr(0, colon), s.substr(colon + 1)};
}

Status stop_one(const std::string& name, bool force, uint64_t timeout_secs) {
    auto info = TRY(Sandbox::inspect(name));
    if (!info.pid) return {};
    auto sandbox = Sandbox::get(name);
    if (!sandbox.ok()) return sandbox.error();
    if (force) return sandbox->kill();
    return sandbox->stop(std::chrono::seconds(timeout_secs));
}

const char* kCompletion = R"bash(# bash completion for msb: source <(msb completion bash)
_msb() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local cmds="run create start stop rm ls list ps exec logs metrics inspect cp completion"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
        return
    fi
    case ${COMP_WORDS[1]} in
        start|stop|rm|exec|logs|metrics|inspect)
            COMPREPLY=($(compgen -W "$(msb ls --quiet 2>/dev/null)" -- "$cur"));;
        *) COMPREPLY=($(compgen -f -- "$cur"));;
    esac
}
complete -F _msb msb
)bash";

}  // namespace

void add_user_commands(CLI::App& app) {
    // host.log verbosity of new sandboxes: MSB_SANDBOX_LOG (default info).
    auto log_level = std::make_shared<std::string>("info");
    if (const char* env = std::getenv("MSB_SANDBOX_LOG"); env && *env) *log_level = env;

    // run
    {
        auto o = std::make_shared<SandboxOptions>();
        auto detach = std::make_shared<bool>(false);
        auto tty = std::make_shared<bool>(false);
        auto command = std::make_shared<std::vector<std::string>>();
        auto* cmd =
            app.add_subcommand("run", "Create a sandbox, run a command in it, then stop it");
        cmd->footer(
            "Examples:\n  msb run -- echo hello\n  msb run -m 1G -c 2 -- uname -a\n"
            "  msb run --name dev -v $PWD:/src -w /src -- make\n  msb run -d --name web");
        add_sandbox_options(cmd, *o);
        cmd->add_flag("-d,--detach", *detach, "Leave the sandbox running and print its name");
        cmd->add_flag("-t,--tty", *tty, "Allocate a PTY (default when stdin is a terminal)");
        cmd->add_option("command", *command, "Command and arguments (after --)");
        cmd->callback([=] {
            auto builder = builder_from(*o, *log_level);
            bool named = !o->name.empty();
            if (*detach) {
                auto sandbox = check(builder.create_detached());
                if (!command->empty()) {
                    auto out =
                        check(sandbox.exec((*command)[0], {command->begin() + 1, command->end()}));
                    (void)std::fwrite(out.stdout_data.data(), 1, out.stdout_data.size(), stdout);
                }
                std::printf("%s\n", sandbox.name().c_str());
                std::exit(0);
            }
            auto sandbox = check(builder.create());
            std::vector<std::string> cmdline = *command;
            if (cmdline.empty()) cmdline = {"/bin/sh"};
            ExecOptions options;
            options.tty = *tty || (command->empty() && ::isatty(STDIN_FILENO));
            int code = attach(sandbox, cmdline, options);
            (void)sandbox.stop(10s);
            if (!named) (void)Sandbox::remove(sandbox.name());
            (void)std::fflush(stdout);
            std::exit(code);
        });
    }
    // create
    {
        auto o = std::make_shared<SandboxOptions>();
        auto* cmd = app.add_subcommand("create", "Create and start a sandbox in the background");
        cmd->footer(
            "Examples:\n  msb create --name web -m 1G\n  msb create --name dev -v $PWD:/src:ro");
        add_sandbox_options(cmd, *o);
        cmd->callback([=] {
            auto sandbox = check(builder_from(*o, *log_level).create_detached());
            std::printf("%s\n", sandbox.name().c_str());
        });
    }
    // start
    {
        auto name = std::make_shared<std::string>();
        auto* cmd = app.add_subcommand("start", "Start a stopped sandbox again");
        cmd->footer("Example:\n  msb start web");
        cmd->add_option("name", *name, "Sandbox name")->required();
        cmd->callback([=] {
            auto sandbox = check(Sandbox::start(*name, true));
            std::printf("%s\n", sandbox.name().c_str());
        });
    }
    // stop
    {
        auto names = std::make_shared<std::vector<std::string>>();
        auto force = std::make_shared<bool>(false);
        auto timeout = std::make_shared<uint64_t>(30);
        auto* cmd = app.add_subcommand("stop", "Stop running sandboxes (graceful; -f kills)");
        cmd->footer("Examples:\n  msb stop web\n  msb stop -t 5 a b\n  msb stop -f web");
        cmd->add_option("names", *names, "Sandbox names")->required();
        cmd->add_flag("-f,--force", *force, "Kill instead of shutting down");
        cmd->add_option("-t,--timeout", *timeout, "Seconds to wait before killing");
        cmd->callback([=] {
            int rc = 0;
            for (const auto& n : *names) {
                auto st = stop_one(n, *force, *timeout);
                if (!st.ok()) {
                    (void)std::fprintf(stderr, "msb: %s\n", st.error().message().c_str());
                    rc = 1;
                } else {
                    std::printf("%s\n", n.c_str());
                }
            }
            std::exit(rc);
        });
    }
    // rm
    {
        auto names = std::make_shared<std::vector<std::string>>();
        auto force = std::make_shared<bool>(false);
        auto* cmd = app.add_subcommand("rm", "Remove sandboxes (-f also kills running ones)");
        cmd->alias("remove");
        cmd->footer("Examples:\n  msb rm web\n  msb rm -f web db");
        cmd->add_option("names", *names, "Sandbox names")->required();
        cmd->add_flag("-f,--force", *force, "Kill a running sandbox first");
        cmd->callback([=] {
            int rc = 0;
            for (const auto& n : *names) {
                Status st;
                if (*force) st = stop_one(n, true, 0);
                if (st.ok()) st = Sandbox::remove(n);
                if (!st.ok()) {
                    (void)std::fprintf(stderr, "msb: %s\n", st.error().message().c_str());
                    rc = 1;
                } else {
                    std::printf("%s\n", n.c_str());
                }
            }
            std::exit(rc);
        });
    }
    // ls / list / ps
    for (const char* name : {"ls", "ps"}) {
        auto running = std::make_shared<bool>(std::string(name) == "ps");
        auto format = std::make_shared<std::string>("table");
        auto quiet = std::make_shared<bool>(false);
        auto* cmd = app.add_subcommand(
            name, std::string(name) == "ls" ? "List sandboxes" : "List running sandboxes");
        if (std::string(name) == "ls") cmd->alias("list");
        cmd->footer("Examples:\n  msb ls\n  msb ls --running\n  msb ls --format json");
        if (std::string(name) == "ls")
            cmd->add_flag("--running", *running, "Only running sandboxes");
        cmd->add_option("--format", *format, "table or json")
            ->check(CLI::IsMember({"table", "json"}));
        cmd->add_flag("-q,--quiet", *quiet, "Names only");
        cmd->callback([=] {
            auto list = check(Sandbox::list());
            nlohmann::json j = nlohmann::json::array();
            if (!*quiet && *format == "table")
                std::printf("%-24s %-22s %-8s %s\n", "NAME", "STATUS", "PID", "CREATED");
            for (const auto& i : list) {
                if (*running && !i.pid) continue;
                if (*quiet)
                    std::printf("%s\n", i.name.c_str());
                else if (*format == "json")
                    j.push_back(info_json(i));
                else
                    std::printf("%-24s %-22s %-8s %s\n", i.name.c_str(), describe(i).c_str(),
                                i.pid ? std::to_string(*i.pid).c_str() : "-",
                                i.created_at.value_or("").c_str());
            }
            if (!*quiet && *format == "json") std::printf("%s\n", j.dump(2).c_str());
        });
    }
    // exec
    {
        auto name = std::make_shared<std::string>();
        auto tty = std::make_shared<bool>(false);
        auto env = std::make_shared<std::vector<std::string>>();
        auto workdir = std::make_shared<std::string>();
        auto user = std::make_shared<std::string>();
        auto timeout = std::make_shared<std::string>();
        auto command = std::make_shared<std::vector<std::string>>();
        auto* cmd = app.add_subcommand("exec", "Run a command in a running sandbox");
        cmd->footer(
            "Examples:\n  msb exec web -- ls /\n  msb exec -t web -- sh\n  msb exec -e A=1 -w /tmp "
            "web -- env");
        cmd->add_option("name", *name, "Sandbox name")->required();
        cmd->add_option("command", *command, "Command and arguments (after --)")->required();
        cmd->add_flag("-t,--tty", *tty, "Allocate a PTY");
        cmd->add_option("-e,--env", *env, "Environment KEY=VALUE")->allow_extra_args(false);
        cmd->add_option("-w,--workdir", *workdir, "Working directory");
        cmd->add_option("-u,--user", *user, "User");
        cmd->add_option("--timeout", *timeout, "Kill the command after this long (30s, 5m)");
        cmd->callback([=] {
            ExecOptions options;
            options.tty = *tty;
            for (const auto& e : *env) options.env.push_back(check(sdk::parse_env(e)));
            if (!workdir->empty()) options.workdir = *workdir;
            if (!user->empty()) options.user = *user;
            if (!timeout->empty()) options.timeout = check(sdk::parse_duration_ms(*timeout));
            auto sandbox = check(Sandbox::get(*name));
            int code = attach(sandbox, *command, options);
            (void)std::fflush(stdout);
            std::exit(code);
        });
    }
    // logs
    {
        auto name = std::make_shared<std::string>();
        auto source = std::make_shared<std::string>("guest");
        auto follow = std::make_shared<bool>(false);
        auto tail = std::make_shared<size_t>(0);
        auto* cmd = app.add_subcommand("logs", "Show a sandbox's guest console or host log");
        cmd->footer(
            "Examples:\n  msb logs web\n  msb logs web --source host --tail 50\n  msb logs -f web");
        cmd->add_option("name", *name, "Sandbox name")->required();
        cmd->add_option("--source", *source, "guest or host")
            ->check(CLI::IsMember({"guest", "host"}));
        cmd->add_flag("-f,--follow", *follow, "Keep printing new output");
        cmd->add_option("--tail", *tail, "Only the last N lines");
        cmd->callback([=] {
            auto info = check(Sandbox::inspect(*name));
            std::string path = info.dir + "/logs/" + *source + ".log";
            if (*tail) {
                for (const auto& l : sdk::tail_rotated_log(path, *tail))
                    std::printf("%s\n", l.c_str());
            } else {
                auto all = sdk::read_rotated_log(path);
                (void)std::fwrite(all.data(), 1, all.size(), stdout);
            }
            (void)std::fflush(stdout);
            if (!*follow) return;
            FILE* f = std::fopen(path.c_str(), "rb");
            if (f) (void)std::fseek(f, 0, SEEK_END);
            while (true) {
                char buf[4096];
                size_t n = f ? std::fread(buf, 1, sizeof buf, f) : 0;
                if (n > 0) {
                    (void)std::fwrite(buf, 1, n, stdout);
                    (void)std::fflush(stdout);
                    continue;
                }
                if (f) std::clearerr(f);
                auto now = Sandbox::inspect(*name);
                if (!now.ok() || !now->pid) break;
                std::this_thread::sleep_for(200ms);
            }
            if (f) (void)std::fclose(f);
        });
    }
    // metrics
    {
        auto name = std::make_shared<std::string>();
        auto watch = std::make_shared<bool>(false);
        auto* cmd = app.add_subcommand("metrics", "Show the latest resource sample of a sandbox");
        cmd->footer("Examples:\n  msb metrics web\n  msb metrics --watch web");
        cmd->add_option("name", *name, "Sandbox name")->required();
        cmd->add_flag("--watch", *watch, "Refresh every second");
        cmd->callback([=] {
            auto sandbox = check(Sandbox::get(*name));
            do {
                auto m = check(sandbox.metrics());
                std::printf(
                    "cpu %.1f%%  memory %lld bytes  disk read %lld  disk write %lld  at %s\n",
                    m.cpu_percent.value_or(0), static_cast<long long>(m.memory_bytes.value_or(0)),
                    static_cast<long long>(m.disk_read_bytes.value_or(0)),
                    static_cast<long long>(m.disk_write_bytes.value_or(0)),
                    m.sampled_at.value_or("-").c_str());
                (void)std::fflush(stdout);
                if (*watch) std::this_thread::sleep_for(1s);
            } while (*watch);
        });
    }
    // inspect
    {
        auto name = std::make_shared<std::string>();
        auto format = std::make_shared<std::string>("json");
        auto* cmd =
            app.add_subcommand("inspect", "Show a sandbox's config, status, runs and paths");
        cmd->footer("Example:\n  msb inspect web");
        cmd->add_option("name", *name, "Sandbox name")->required();
        cmd->add_option("--format", *format, "json")->check(CLI::IsMember({"json"}));
        cmd->callback([=] {
            auto info = check(Sandbox::inspect(*name));
            std::printf("%s\n", info_json(info).dump(2).c_str());
        });
    }
    // cp
    {
        auto src = std::make_shared<std::string>();
        auto dst = std::make_shared<std::string>();
        auto* cmd = app.add_subcommand("cp", "Copy a file between the host and a sandbox");
        cmd->footer("Examples:\n  msb cp ./a.txt web:/tmp/a.txt\n  msb cp web:/etc/os-release .");
        cmd->add_option("src", *src, "SOURCE (path or NAME:/path)")->required();
        cmd->add_option("dst", *dst, "DEST (path or NAME:/path)")->required();
        cmd->callback([=] {
            auto [sname, spath] = split_target(*src);
            auto [dname, dpath] = split_target(*dst);
            if (sname.empty() == dname.empty())
                fail("exactly one of SRC and DST must be NAME:/path (e.g. msb cp ./f web:/tmp/f)");
            if (!sname.empty()) {
                auto sandbox = check(Sandbox::get(sname));
                std::error_code ec;
                if (std::filesystem::is_directory(dpath, ec))
                    dpath = (std::filesystem::path(dpath) / std::filesystem::path(spath).filename())
                                .string();
                check(sandbox.fs().copy_to_host(spath, dpath));
            } else {
                auto sandbox = check(Sandbox::get(dname));
                check(sandbox.fs().copy_from_host(spath, dpath));
            }
        });
    }
    // completion
    {
        auto shell = std::make_shared<std::string>();
        auto* cmd = app.add_subcommand("completion", "Print a shell completion script");
        cmd->footer("Example:\n  source <(msb completion bash)");
        cmd->add_option("shell", *shell, "bash")->required()->check(CLI::IsMember({"bash"}));
        cmd->callback([] { (void)std::fputs(kCompletion, stdout); });
    }
}

}  // namespace msb::cli
