#!/usr/bin/env bash
# Builds the base initramfs of msb guests as an uncompressed newc cpio:
#   /init                  the static msb-agent (stripped)
#   /bin/busybox + applets Debian's busybox-static, one symlink per applet (busybox --list-full)
#   /etc/passwd, /etc/group, /etc/hosts
#   /dev/console, /dev/null and the mount-point directories the agent uses
#
# usage: guest/rootfs/build.sh OUT.cpio AGENT_BINARY [BUSYBOX]
# The archive is written without root privileges (device nodes are cpio entries, not files)
# and is reproducible: every timestamp is 0 and entries are sorted.
set -euo pipefail

out=${1:?usage: build.sh OUT.cpio AGENT_BINARY [BUSYBOX]}
agent=${2:?usage: build.sh OUT.cpio AGENT_BINARY [BUSYBOX]}
busybox=${3:-/bin/busybox}

[[ -x $agent ]] || { echo "build.sh: agent binary $agent missing" >&2; exit 1; }
[[ -x $busybox ]] || { echo "build.sh: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
strip --strip-all -o "$work/init" "$agent"
"$busybox" --list-full > "$work/applets"

/usr/bin/python3 - "$out.tmp" "$work/init" "$busybox" "$work/applets" <<'PY'
import os, stat, sys

out_path, init_path, busybox_path, applets_path = sys.argv[1:5]

entries = {}  # name -> (mode, data, rdev_major, rdev_minor)

def directory(name, mode=0o755):
    entries[name] = (stat.S_IFDIR | mode, b"", 0, 0)

def regular(name, data, mode=0o644):
    entries[name] = (stat.S_IFREG | mode, data, 0, 0)

def symlink(name, target):
    entries[name] = (stat.S_IFLNK | 0o777, target.encode(), 0, 0)

def chardev(name, major, minor, mode):
    entries[name] = (stat.S_IFCHR | mode, b"", major, minor)

for d in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "run",
          "root", "newroot", ".msb", ".msb-boot", "mnt", "var", "home"]:
    directory(d, 0o700 if d == "root" else 0o755)
directory("tmp", 0o1777)
chardev("dev/console", 5, 1, 0o600)
chardev("dev/null", 1, 3, 0o666)

with open(init_path, "rb") as f:
    regular("init", f.read(), 0o755)
with open(busybox_path, "rb") as f:
    regular("bin/busybox", f.read(), 0o755)
with open(applets_path) as f:
    for line in f:
        applet = line.strip().lstrip("/")
        if applet and applet != "bin/busybox":
            symlink(applet, "/bin/busybox")

regular("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                      b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
regular("etc/group", b"root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
regular("etc/hosts", b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")

def header(ino, mode, nlink, size, major, minor, namesize):
    fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, major, minor, namesize, 0]
    return b"070701" + b"".join(b"%08X" % v for v in fields)

def pad(n):
    return b"\0" * ((4 - n % 4) % 4)

with open(out_path, "wb") as out:
    ino = 1
    for name in sorted(entries):
        mode, data, major, minor = entries[name]
        encoded = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        h = header(ino, mode, nlink, len(data), major, minor, len(encoded))
        out.write(h + encoded + pad(len(h) + len(encoded)) + data + pad(len(data)))
        ino += 1
    trailer = b"TRAILER!!!\0"
    h = header(0, 0, 1, 0, 0, 0, len(trailer))
    out.write(h + trailer + pad(len(h) + len(trailer)))
PY
mv "$out.tmp" "$out"
