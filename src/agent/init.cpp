// PID 1 init steps; see init.h. Only system calls: no fork/exec of helper programs.
#include "agent/init.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "base/log.h"
#include "base/unique_fd.h"

namespace msb::agent {

namespace {

// Tried in order when no fstype is given; a wrong type fails with EINVAL (or ENODEV when the
// kernel lacks it) and the next is tried.
constexpr const char* kProbeOrder[] = {"ext4", "erofs", "xfs", "btrfs", "squashfs", "vfat"};

bool read_only_fs(const std::string& fstype) {
    return fstype == "erofs" || fstype == "squashfs" || fstype == "iso9660";
}

Status make_dirs(const std::string& path, mode_t mode = 0755) {
    if (path.empty()) return {};
    size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        std::string prefix = path.substr(0, pos);
        if (prefix.empty()) continue;
        if (::mkdir(prefix.c_str(), mode) < 0 && errno != EEXIST)
            return Error::from_errno("mkdir " + prefix);
    }
    return {};
}

Status do_mount(const std::string& source, const std::string& target, const char* fstype,
                unsigned long flags, const std::string& data = {}) {
    if (::mount(source.c_str(), target.c_str(), fstype, flags,
                data.empty() ? nullptr : data.c_str()) < 0)
        return Error::from_errno("mount " + source + " on " + target +
                                 (fstype ? std::string(" (") + fstype + ")" : std::string()));
    return {};
}

// Creates a file to bind-mount over when the target does not exist.
Status ensure_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return {};
    size_t slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) TRY(make_dirs(path.substr(0, slash)));
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Error::from_errno("create mount point " + path);
    ::close(fd);
    return {};
}

Result<std::string> read_trimmed(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Error::from_errno("open " + path);
    UniqueFd owned(fd);
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    if (n < 0) return Error::from_errno("read " + path);
    std::string s(buf, static_cast<size_t>(n));
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\0')) s.pop_back();
    return s;
}

std::vector<std::string> list_dir(const std::string& path) {
    std::vector<std::string> out;
    DIR* dir = ::opendir(path.c_str());
    if (!dir) return out;
    while (dirent* e = ::readdir(dir)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") out.push_back(name);
    }
    ::closedir(dir);
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

Status mount_early_filesystems() {
    TRY(make_dirs("/proc"));
    TRY(make_dirs("/sys"));
    TRY(make_dirs("/dev"));
    Status proc = do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
    if (!proc.ok() && proc.error().code() != EBUSY) return proc;
    Status sys = do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
    if (!sys.ok() && sys.error().code() != EBUSY) return sys;
    Status dev = do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    if (!dev.ok() && dev.error().code() != EBUSY) return dev;

    // The kernel opens /dev/console for init only when the initramfs has it.
    if (::fcntl(0, F_GETFD) < 0 || ::fcntl(1, F_GETFD) < 0 || ::fcntl(2, F_GETFD) < 0) {
        int fd = ::open("/dev/console", O_RDWR);
        if (fd >= 0) {
            for (int i = 0; i < 3; ++i)
                if (::fcntl(i, F_GETFD) < 0) ::dup2(fd, i);
            if (fd > 2) ::close(fd);
        }
    }

    TRY(make_dirs("/dev/pts"));
    TRY(do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                 "newinstance,ptmxmode=0666,mode=0620,gid=5"));
    // /dev/ptmx must reach this devpts instance.
    ::unlink("/dev/ptmx");
    if (::symlink("pts/ptmx", "/dev/ptmx") < 0) return Error::from_errno("symlink /dev/ptmx");
    TRY(make_dirs("/dev/shm"));
    TRY(do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"));
    // Conventional links some programs expect.
    ::symlink("/proc/self/fd", "/dev/fd");
    ::symlink("/proc/self/fd/0", "/dev/stdin");
    ::symlink("/proc/self/fd/1", "/dev/stdout");
    ::symlink("/proc/self/fd/2", "/dev/stderr");
    return {};
}

Status mount_run_and_tmp() {
    for (const auto& [path, mode] : {std::pair{"/run", "0755"}, std::pair{"/tmp", "1777"}}) {
        Status made = make_dirs(path);
        if (!made.ok()) {
            log::warn("init: {} (not mounting tmpfs there)", made.error().message());
            continue;
        }
        TRY(do_mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, std::string("mode=") + mode));
    }
    return {};
}

Status mount_probing(const std::string& device, const std::string& target,
                     const std::optional<std::string>& fstype, Access access) {
    unsigned long flags = access == Access::ReadOnly ? MS_RDONLY : 0;
    if (fstype) {
        if (read_only_fs(*fstype)) flags |= MS_RDONLY;
        return do_mount(device, target, fstype->c_str(), flags);
    }
    std::string tried;
    for (const char* type : kProbeOrder) {
        unsigned long f = flags | (read_only_fs(type) ? MS_RDONLY : 0);
        if (::mount(device.c_str(), target.c_str(), type, f, nullptr) == 0) {
            log::info("init: mounted {} on {} as {}", device, target, type);
            return {};
        }
        int error = errno;
        if (error != EINVAL && error != ENODEV && error != EBADMSG && error != EUCLEAN)
            return Error::from_errno("mount " + device + " on " + target + " (" + type + ")",
                                     error);
        tried += tried.empty() ? type : std::string(", ") + type;
    }
    return Error(
        "mount " + device + " on " + target + ": no known filesystem (tried " + tried + ")",
        EINVAL);
}

Result<bool> mount_new_root(const GuestConfig& config) {
    if (config.block_root) {
        TRY(make_dirs(kNewRootPath));
        Status st = mount_probing(config.block_root->device, kNewRootPath,
                                  config.block_root->fstype, Access::ReadWrite);
        if (!st.ok()) return st.error().with_context("MSB_BLOCK_ROOT");
        return true;
    }
    if (config.virtiofs_root) {
        TRY(make_dirs(kNewRootPath));
        Status st = do_mount(config.virtiofs_root->tag, kNewRootPath, "virtiofs", 0);
        if (!st.ok()) return st.error().with_context("MSB_ROOT");
        return true;
    }
    return false;
}

Status switch_root(const std::string& new_root) {
    for (const char* dir : {"/dev", "/proc", "/sys"}) {
        std::string target = new_root + dir;
        ::mkdir(target.c_str(), 0755);  // usually present; a read-only root must have them
        TRY(do_mount(dir, target, nullptr, MS_MOVE));
    }
    if (::chdir(new_root.c_str()) < 0) return Error::from_errno("chdir " + new_root);
    TRY(do_mount(new_root, "/", nullptr, MS_MOVE));
    if (::chroot(".") < 0) return Error::from_errno("chroot " + new_root);
    if (::chdir("/") < 0) return Error::from_errno("chdir /");
    return {};
}

bool mount_runtime_share() {
    ::mkdir("/.msb", 0755);
    if (::mount("msb_runtime", "/.msb", "virtiofs", MS_NOSUID | MS_NODEV, nullptr) == 0)
        return true;
    int error = errno;
    log::info("init: runtime share msb_runtime not mounted at /.msb ({}); no heartbeat or scripts",
              ::strerror(error));
    return false;
}

Status apply_mounts(const GuestConfig& config, const std::string& sys_root) {
    for (const auto& t : config.tmpfs) {
        std::string data = "mode=" + [&] {
            char buf[16];
            (void)std::snprintf(buf, sizeof buf, "%o", t.mode.value_or(01777));
            return std::string(buf);
        }();
        if (t.size_mib) data += ",size=" + std::to_string(*t.size_mib) + "m";
        unsigned long flags = MS_NOSUID | MS_NODEV;
        if (t.noexec) flags |= MS_NOEXEC;
        if (t.access == Access::ReadOnly) flags |= MS_RDONLY;
        Status st = make_dirs(t.path);
        if (st.ok()) st = do_mount("tmpfs", t.path, "tmpfs", flags, data);
        if (!st.ok()) return st.error().with_context("MSB_TMPFS entry " + t.path);
    }
    for (const auto& d : config.dir_mounts) {
        unsigned long flags = d.access == Access::ReadOnly ? MS_RDONLY : 0;
        Status st = make_dirs(d.guest_path);
        if (st.ok()) st = do_mount(d.tag, d.guest_path, "virtiofs", flags);
        if (!st.ok())
            return st.error().with_context("MSB_DIR_MOUNTS entry " + d.tag + ":" + d.guest_path);
    }
    std::set<std::string> staged;
    for (const auto& f : config.file_mounts) {
        std::string context =
            "MSB_FILE_MOUNTS entry " + f.tag + ":" + f.filename + ":" + f.guest_path;
        std::string staging = std::string(kFileMountStaging) + "/" + f.tag;
        if (!staged.count(f.tag)) {
            Status st = make_dirs(staging);
            if (st.ok()) st = do_mount(f.tag, staging, "virtiofs", 0);
            if (!st.ok()) return st.error().with_context(context);
            staged.insert(f.tag);
        }
        std::string source = staging + "/" + f.filename;
        Status st = ensure_file(f.guest_path);
        if (st.ok()) st = do_mount(source, f.guest_path, nullptr, MS_BIND);
        if (st.ok() && f.access == Access::ReadOnly)
            st = do_mount(source, f.guest_path, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY);
        if (!st.ok()) return st.error().with_context(context);
    }
    for (const auto& d : config.disk_mounts) {
        std::string context = "MSB_DISK_MOUNTS entry " + d.id + ":" + d.guest_path;
        auto device = find_disk_by_serial(d.id, sys_root);
        if (!device.ok()) return device.error().with_context(context);
        Status st = make_dirs(d.guest_path);
        if (st.ok()) st = mount_probing(*device, d.guest_path, d.fstype, d.access);
        if (!st.ok()) return st.error().with_context(context);
    }
    return {};
}

Status apply_hostname(const std::string& hostname) {
    if (::sethostname(hostname.c_str(), hostname.size()) < 0)
        return Error::from_errno("MSB_HOSTNAME=\"" + hostname + "\": sethostname");
    // /etc/hosts: keep the root's file and add the hostname when it is missing.
    std::ifstream in("/etc/hosts");
    std::stringstream existing;
    if (in) existing << in.rdbuf();
    std::string text = existing.str();
    bool has_localhost = text.find("localhost") != std::string::npos;
    bool has_name = false;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream words(line);
        std::string word;
        words >> word;  // address
        while (words >> word) has_name = has_name || word == hostname;
    }
    if (has_name && has_localhost) return {};
    std::string add;
    if (!has_localhost) add += "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    if (!has_name) add += "127.0.1.1\t" + hostname + "\n";
    int fd = ::open("/etc/hosts", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || !write_all(fd, add.data(), add.size()).ok())
        log::warn("init: cannot update /etc/hosts: {}", ::strerror(errno));
    if (fd >= 0) ::close(fd);
    return {};
}

Status apply_rlimits(const std::vector<RlimitSpec>& rlimits) {
    for (const auto& r : rlimits) {
        struct rlimit lim {
            static_cast<rlim_t>(r.soft), static_cast<rlim_t>(r.hard)
        };
        if (::setrlimit(static_cast<__rlimit_resource_t>(r.resource), &lim) < 0)
            return Error::from_errno("MSB_RLIMITS " + r.name + "=" + std::to_string(r.soft) + ":" +
                                     std::to_string(r.hard));
    }
    return {};
}

Status bring_up_loopback() {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error::from_errno("socket for lo");
    UniqueFd sock(fd);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) return Error::from_errno("SIOCGIFFLAGS lo");
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) return Error::from_errno("SIOCSIFFLAGS lo");
    return {};
}

Status apply_network(const GuestConfig& config) {
    if (!config.net && !config.ipv4) return {};
    std::string iface = config.net ? config.net->iface : "eth0";
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error::from_errno("socket for " + iface);
    UniqueFd sock(fd);
    auto request = [&iface]() {
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
        return ifr;
    };
    if (config.net && config.net->mtu) {
        ifreq ifr = request();
        ifr.ifr_mtu = static_cast<int>(*config.net->mtu);
        if (::ioctl(fd, SIOCSIFMTU, &ifr) < 0)
            return Error::from_errno("MSB_NET: set mtu of " + iface);
    }
    if (config.net && config.net->mac) {
        ifreq ifr = request();
        ifr.ifr_hwaddr.sa_family = 1;  // ARPHRD_ETHER
        unsigned bytes[6];
        if (std::sscanf(config.net->mac->c_str(), "%x:%x:%x:%x:%x:%x", &bytes[0], &bytes[1],
                        &bytes[2], &bytes[3], &bytes[4], &bytes[5]) != 6)
            return Error("MSB_NET: malformed mac '" + *config.net->mac + "'", EINVAL);
        for (int i = 0; i < 6; ++i) ifr.ifr_hwaddr.sa_data[i] = static_cast<char>(bytes[i]);
        if (::ioctl(fd, SIOCSIFHWADDR, &ifr) < 0)
            return Error::from_errno("MSB_NET: set mac of " + iface);
    }
    if (config.ipv4) {
        auto set_addr = [&](unsigned long op, const std::string& text, const char* what) -> Status {
            ifreq ifr = request();
            auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
            sin->sin_family = AF_INET;
            ::inet_pton(AF_INET, text.c_str(), &sin->sin_addr);
            if (::ioctl(fd, op, &ifr) < 0)
                return Error::from_errno(std::string("MSB_NET_IPV4: ") + what);
            return {};
        };
        TRY(set_addr(SIOCSIFADDR, config.ipv4->address, "set address"));
        uint32_t mask = config.ipv4->prefix == 0 ? 0 : htonl(~0u << (32 - config.ipv4->prefix));
        char mask_text[INET_ADDRSTRLEN];
        ::inet_ntop(AF_INET, &mask, mask_text, sizeof mask_text);
        TRY(set_addr(SIOCSIFNETMASK, mask_text, "set netmask"));
    }
    ifreq ifr = request();
    if (::ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        return Error::from_errno("MSB_NET: interface " + iface);
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) return Error::from_errno("MSB_NET: bring up " + iface);
    if (config.ipv4 && config.ipv4->gateway) {
        rtentry route{};
        auto* dst = reinterpret_cast<sockaddr_in*>(&route.rt_dst);
        auto* gw = reinterpret_cast<sockaddr_in*>(&route.rt_gateway);
        auto* mask = reinterpret_cast<sockaddr_in*>(&route.rt_genmask);
        dst->sin_family = gw->sin_family = mask->sin_family = AF_INET;
        ::inet_pton(AF_INET, config.ipv4->gateway->c_str(), &gw->sin_addr);
        route.rt_flags = RTF_UP | RTF_GATEWAY;
        route.rt_dev = const_cast<char*>(iface.c_str());
        if (::ioctl(fd, SIOCADDRT, &route) < 0 && errno != EEXIST)
            return Error::from_errno("MSB_NET_IPV4: default route via " + *config.ipv4->gateway);
    }
    if (config.ipv4 && !config.ipv4->dns.empty()) {
        std::string text;
        for (const auto& d : config.ipv4->dns) text += "nameserver " + d + "\n";
        int rfd = ::open("/etc/resolv.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (rfd < 0 || !write_all(rfd, text.data(), text.size()).ok())
            log::warn("init: cannot write /etc/resolv.conf: {}", ::strerror(errno));
        if (rfd >= 0) ::close(rfd);
    }
    return {};
}

Result<std::string> find_port_device(const std::string& name, const std::string& sys_root) {
    std::string dir = sys_root + "/class/virtio-ports";
    for (const auto& port : list_dir(dir)) {
        auto port_name = read_trimmed(dir + "/" + port + "/name");
        if (port_name.ok() && port_name.value() == name) return "/dev/" + port;
    }
    return Error("no virtio-console port named \"" + name + "\" under " + dir, ENOENT);
}

Result<std::string> find_disk_by_serial(const std::string& serial, const std::string& sys_root) {
    std::string dir = sys_root + "/block";
    for (const auto& disk : list_dir(dir)) {
        auto disk_serial = read_trimmed(dir + "/" + disk + "/serial");
        if (disk_serial.ok() && disk_serial.value() == serial) return "/dev/" + disk;
    }
    return Error("no virtio-blk disk with serial \"" + serial + "\" under " + dir, ENOENT);
}

void power_off(int status) {
    ::sync();
    // Unmount in reverse mount order what is not needed to the end; busy mounts stay and are
    // covered by the sync above.
    std::vector<std::string> targets;
    std::ifstream mounts("/proc/self/mounts");
    for (std::string line; std::getline(mounts, line);) {
        std::istringstream words(line);
        std::string source, target;
        words >> source >> target;
        if (target == "/" || target.rfind("/proc", 0) == 0 || target.rfind("/sys", 0) == 0 ||
            target.rfind("/dev", 0) == 0)
            continue;
        targets.push_back(target);
    }
    for (auto it = targets.rbegin(); it != targets.rend(); ++it) ::umount2(it->c_str(), 0);
    ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_RDONLY, nullptr);
    ::sync();
    ::_exit(status & 0xff);
}

}  // namespace msb::agent
