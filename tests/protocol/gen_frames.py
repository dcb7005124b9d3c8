#!/usr/bin/python3
"""Independent encoder of agent-protocol frames, for protocol_test's interop check.

Builds one frame per case the way microsandbox 0.4.3 does (serde structs serialised by
ciborium: maps keyed by field name in declaration order, Option::None as null, Vec<u8> with
serde_bytes as a byte string, externally tagged enums as one-entry maps), using python3-cbor2
instead of our C++ codec. Prints one line per case:

    <case name> <exact|decode> <frame as lower-case hex>

"exact": our encoder must produce the same bytes from the equivalent C++ struct.
"decode": a form 0.4.3 never writes but must accept (absent default fields, unknown keys).

Must stay in step with the case list in src/protocol/protocol_interop_test.cpp.
Run with /usr/bin/python3 (the Debian python that has cbor2).
"""
import struct
import sys

import cbor2

FLAG_TERMINAL = 1
FLAG_SESSION_START = 2
FLAG_SHUTDOWN = 4

FLAGS = {
    "core.exec.exited": FLAG_TERMINAL,
    "core.fs.response": FLAG_TERMINAL,
    "core.exec.request": FLAG_SESSION_START,
    "core.fs.request": FLAG_SESSION_START,
    "core.shutdown": FLAG_SHUTDOWN,
}


def frame(msg_type, msg_id, payload):
    """payload: a dict (CBOR-encoded into "p") or raw bytes (used as "p" as is)."""
    p = payload if isinstance(payload, bytes) else cbor2.dumps(payload)
    body = cbor2.dumps({"v": 1, "t": msg_type, "p": p})
    return struct.pack(">IIB", 5 + len(body), msg_id, FLAGS.get(msg_type, 0)) + body


def entry(path, kind, size, mode, modified):
    return {"path": path, "kind": kind, "size": size, "mode": mode, "modified": modified}


def cases():
    all_bytes = bytes(range(256))
    big = bytes((i * 7) & 0xFF for i in range(70000))
    yield "ready", "exact", frame("core.ready", 0, {
        "boot_time_ns": 123456789012, "init_time_ns": 4096, "ready_time_ns": 2**64 - 1})
    yield "shutdown", "exact", frame("core.shutdown", 0, b"")
    yield "exec_request_full", "exact", frame("core.exec.request", 0x10000001, {
        "cmd": "/bin/sh",
        "args": ["-c", "echo héllo"],
        "env": ["A=1", "PATH=/.msb/scripts:/usr/bin"],
        "cwd": "/tmp",
        "user": "nobody",
        "tty": True,
        "rows": 50,
        "cols": 300,
        "rlimits": [{"resource": "nofile", "soft": 1024, "hard": 65536},
                    {"resource": "as", "soft": 2**40, "hard": 2**40}],
    })
    yield "exec_request_defaults_written", "exact", frame("core.exec.request", 7, {
        "cmd": "ls", "args": [], "env": [], "cwd": None, "user": None, "tty": False,
        "rows": 24, "cols": 80, "rlimits": []})
    yield "exec_request_minimal", "decode", frame("core.exec.request", 7, {"cmd": "ls"})
    yield "exec_request_unknown_field", "decode", frame("core.exec.request", 8, {
        "future": {"x": [1, 2]}, "cmd": "true", "tty": True})
    yield "exec_started", "exact", frame("core.exec.started", 3, {"pid": 4294967295})
    yield "exec_stdin", "exact", frame("core.exec.stdin", 3, {"data": b"hello\n"})
    yield "exec_stdin_close", "exact", frame("core.exec.stdin", 3, {"data": b""})
    yield "exec_stdout", "exact", frame("core.exec.stdout", 3, {"data": all_bytes})
    yield "exec_stderr", "exact", frame("core.exec.stderr", 3, {"data": big})
    yield "exec_exited", "exact", frame("core.exec.exited", 3, {"code": 137})
    yield "exec_exited_negative", "exact", frame("core.exec.exited", 3, {"code": -2147483648})
    yield "exec_resize", "exact", frame("core.exec.resize", 3, {"rows": 65535, "cols": 0})
    yield "exec_signal", "exact", frame("core.exec.signal", 0xFFFFFFFF, {"signal": 9})
    yield "fs_stat", "exact", frame("core.fs.request", 9, {"op": {"Stat": {"path": "/etc/hosts"}}})
    yield "fs_list", "exact", frame("core.fs.request", 9, {"op": {"List": {"path": "/"}}})
    yield "fs_read", "exact", frame("core.fs.request", 9, {"op": {"Read": {"path": "/a b"}}})
    yield "fs_write_mode", "exact", frame("core.fs.request", 9, {
        "op": {"Write": {"path": "/w", "mode": 0o644}}})
    yield "fs_write_no_mode", "exact", frame("core.fs.request", 9, {
        "op": {"Write": {"path": "/w", "mode": None}}})
    yield "fs_write_mode_absent", "decode", frame("core.fs.request", 9, {
        "op": {"Write": {"path": "/w"}}})
    yield "fs_mkdir", "exact", frame("core.fs.request", 9, {"op": {"Mkdir": {"path": "/d/e"}}})
    yield "fs_remove", "exact", frame("core.fs.request", 9, {"op": {"Remove": {"path": "/f"}}})
    yield "fs_remove_dir", "exact", frame("core.fs.request", 9, {
        "op": {"RemoveDir": {"path": "/d"}}})
    yield "fs_copy", "exact", frame("core.fs.request", 9, {
        "op": {"Copy": {"src": "/s", "dst": "/t"}}})
    yield "fs_rename", "exact", frame("core.fs.request", 9, {
        "op": {"Rename": {"src": "/s", "dst": "/t"}}})
    yield "fs_data", "exact", frame("core.fs.data", 9, {"data": big})
    yield "fs_data_end", "exact", frame("core.fs.data", 9, {"data": b""})
    yield "fs_response_error", "exact", frame("core.fs.response", 9, {
        "ok": False, "error": "No such file or directory", "data": None})
    yield "fs_response_ok", "exact", frame("core.fs.response", 9, {
        "ok": True, "error": None, "data": None})
    yield "fs_response_stat", "exact", frame("core.fs.response", 9, {
        "ok": True, "error": None,
        "data": {"Stat": entry("/etc/hosts", "file", 2**33, 0o100644, 1764390000)}})
    yield "fs_response_list", "exact", frame("core.fs.response", 9, {
        "ok": True, "error": None,
        "data": {"List": [entry("/a", "dir", 4096, 0o40755, -5),
                          entry("/b", "symlink", 1, 0o120777, None)]}})
    yield "fs_response_minimal", "decode", frame("core.fs.response", 9, {"ok": True})


def main():
    out = sys.stdout
    for name, mode, data in cases():
        out.write(f"{name} {mode} {data.hex()}\n")


if __name__ == "__main__":
    main()
