#!/usr/bin/env python3
"""make bench: runs msb's benchmarks, writes build/bench/results.json and prints a table.

Each step is a program that prints its figures as `BENCH {"name", "unit", "samples", ...}`
lines (bench/sandbox_bench.cpp), or whose output this runner turns into such figures (boot.sh,
Google Benchmark, `msb run`). The runner adds median/min/max/p99, machine facts and the git
revision, computes the msb/QEMU ratios, and exits non-zero when any step failed or measured
nothing: a benchmark that could not take its measurement never reports a zero.

    bench/run.py [--build DIR] [--out FILE] [--only STEP,...] [--step NAME=COMMAND]...

Steps: micro, boot, sandbox, run_true, density, blk (all by default). --step adds a step that runs
COMMAND through the shell and reads its BENCH lines (the runner's own tests use it).
Environment: MSB_BENCH_BOOT_RUNS, MSB_BENCH_BOOTS, MSB_BENCH_RUN_TRUE, MSB_BENCH_BLK_MIB,
MSB_BENCH_BLK_RUNS and the MSB_BENCH_* sizes and
repetitions
of sandbox_bench; defaults are scaled down on the PVM host (docs/performance.md).
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_VERSION = 1


class StepFailed(Exception):
    pass


def on_pvm():
    return os.path.isdir("/sys/module/kvm_pvm")


def setting(name, hardware, pvm):
    value = os.environ.get(name)
    if value:
        return int(value)
    return pvm if on_pvm() else hardware


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))  # ceil
    return sorted_values[min(rank, len(sorted_values)) - 1]


NAME = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_<>:-]+)+$")  # as results.schema.json


def summarize(figure):
    """Validates one raw figure and adds its statistics; raises StepFailed when unusable."""
    if not isinstance(figure, dict):
        raise StepFailed(f"a figure must be a JSON object, not {figure!r}"[:200])
    name = figure.get("name")
    samples = figure.get("samples")
    if not isinstance(name, str) or not NAME.match(name):
        raise StepFailed(f"a figure needs a dotted lower-case name, not {name!r}")
    if not isinstance(samples, list) or not samples:
        raise StepFailed(f"{name}: no samples")
    if not all(isinstance(v, (int, float)) and v == v for v in samples):
        raise StepFailed(f"{name}: non-numeric samples {samples}")
    values = sorted(float(v) for v in samples)
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    out = {
        "name": name,
        "unit": str(figure.get("unit", "")),
        "samples": [float(v) for v in samples],
        "median": median,
        "min": values[0],
        "max": values[-1],
        "p99": percentile(values, 0.99),
        "better": figure.get("better", "lower"),
        "what": str(figure.get("what", "")),
    }
    if out["better"] not in ("lower", "higher"):
        raise StepFailed(f"{name}: 'better' must be lower or higher")
    if not out["unit"]:
        raise StepFailed(f"{name}: no unit")
    return out


def bench_lines(text):
    figures = []
    for line in text.splitlines():
        if line.startswith("BENCH "):
            try:
                figures.append(json.loads(line[len("BENCH "):]))
            except json.JSONDecodeError as e:
                raise StepFailed(f"unreadable BENCH line ({e}): {line[:200]}")
    return figures


def run(command, env=None, timeout=3600, echo=True):
    """Runs a shell command, echoing its output as it comes; returns (status, stdout text).
    After `timeout` seconds its whole process group is killed and the step fails."""
    if echo:
        print(f"$ {command}", flush=True)
    proc = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT, errors="replace", start_new_session=True)
    expired = threading.Event()

    def expire():
        expired.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, expire)
    timer.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if echo and not line.startswith("BENCH "):
                print("  " + line, end="", flush=True)
        status = proc.wait()
    finally:
        timer.cancel()
    if expired.is_set():
        raise StepFailed(f"timed out after {timeout} s: {command}")
    return status, "".join(lines)


def command_step(command, env=None, timeout=3600):
    status, out = run(command, env=env, timeout=timeout)
    if status != 0:
        raise StepFailed(f"exited with status {status}: {command}")
    figures = bench_lines(out)
    if not figures:
        raise StepFailed(f"printed no figures: {command}")
    return figures


def step_micro(build, results):
    binary = os.path.join(build, "bench", "micro_bench")
    status, out = run(f"{shlex.quote(binary)} --benchmark_format=json --benchmark_repetitions=5",
                      echo=False)
    if status != 0:
        raise StepFailed(f"micro_bench exited with status {status}")
    data = json.loads(out)
    by_name = {}
    for b in data.get("benchmarks", []):
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3}.get(b.get("time_unit", "ns"), 1e-3)
        by_name.setdefault(b["run_name"], []).append(b["real_time"] * scale)
    if not by_name:
        raise StepFailed("micro_bench reported no successful benchmark")
    return [{"name": "micro." + name.replace("/", "_"), "unit": "us", "samples": samples,
             "better": "lower", "what": "Google Benchmark, one 5-repetition run"}
            for name, samples in by_name.items()]


def step_boot(build, results):
    runs = setting("MSB_BENCH_BOOT_RUNS", 10, 3)
    env = dict(os.environ, BUILD=build)
    status, out = run(f"bench/boot.sh {runs}", env=env, timeout=7200)
    if status != 0:
        raise StepFailed(f"bench/boot.sh exited with status {status}")
    fields = {"msb": {}, "qemu": {}}
    for line in out.splitlines():
        m = re.match(r"^(msb|qemu) +marker_ms=(\S+) first_run_ms=(\S+) exit_ms=(\S+) status=(\S+)",
                     line)
        if not m:
            continue
        who = m.group(1)
        marker, first, exit_ms = float(m.group(2)), float(m.group(3)), float(m.group(4))
        if m.group(5) != "0":
            raise StepFailed(f"{who}: a boot ended with status {m.group(5)} (0 expected: init "
                             "powers off after the marker)")
        if marker < 0:
            raise StepFailed(f"{who}: a boot never printed the /init marker")
        fields[who].setdefault("marker", []).append(marker)
        fields[who].setdefault("exit", []).append(exit_ms)
        if who == "msb":
            if first < 0:
                raise StepFailed("msb did not report its first KVM_RUN")
            fields[who].setdefault("first", []).append(first)
    what_marker = "process start to the /init marker on the serial console (same kernel, " \
                  "initramfs and command line)"
    figures = []
    for who, label in (("msb", "msb"), ("qemu", "qemu_microvm")):
        if "marker" not in fields[who]:
            raise StepFailed(f"no {who} boot was measured")
        figures.append({"name": f"boot.{label}.to_init", "unit": "ms",
                        "samples": fields[who]["marker"], "what": what_marker})
        figures.append({"name": f"boot.{label}.end_to_end", "unit": "ms",
                        "samples": fields[who]["exit"],
                        "what": "process start to exit; init powers off right after the marker"})
    figures.append({"name": "boot.msb.host_to_first_instruction", "unit": "ms",
                    "samples": fields["msb"]["first"],
                    "what": "msb vmm-run process start to its first KVM_RUN (host-side cost)"})
    return figures


def step_blk(build, results):
    mib = setting("MSB_BENCH_BLK_MIB", 1024, 8)
    runs = setting("MSB_BENCH_BLK_RUNS", 3, 2)
    env = dict(os.environ, BUILD=build)
    status, out = run(f"bench/blk.sh {mib} {runs}", env=env, timeout=7200)
    if status != 0:
        raise StepFailed(f"bench/blk.sh exited with status {status}")
    seconds = {"host": [], "msb": [], "qemu": []}
    for line in out.splitlines():
        m = re.match(r"^(host|msb|qemu) seconds=([0-9.]+) bytes=([0-9]+)$", line.strip())
        if m:
            if int(m.group(3)) != mib << 20:
                raise StepFailed(f"bench/blk.sh: {m.group(1)} read {m.group(3)} bytes of "
                                 f"{mib << 20}")
            seconds[m.group(1)].append(float(m.group(2)))
    for who, values in seconds.items():
        if len(values) != runs or min(values) <= 0:
            raise StepFailed(f"bench/blk.sh: {len(values)} usable {who} times for {runs} runs")
    what = f"{mib} MiB raw image read sequentially (64 KiB reads) in the guest after it dropped " \
           "its caches"
    return [
        {"name": "device.blk_raw_read_vs_host", "unit": "x host", "better": "lower",
         "samples": [g / h for g, h in zip(seconds["msb"], seconds["host"])],
         "what": what + ", guest time / the same read on the host (page cache warm)"},
        {"name": "device.blk_raw_read_vs_qemu", "unit": "ratio", "better": "lower",
         "samples": [g / q for g, q in zip(seconds["msb"], seconds["qemu"])],
         "what": what + ", msb guest time / QEMU microvm guest time (same kernel, interleaved)"},
        {"name": "device.blk_raw_read_msb", "unit": "MiB/s", "better": "higher",
         "samples": [mib / g for g in seconds["msb"]], "what": what + ", msb"},
        {"name": "device.blk_raw_read_qemu", "unit": "MiB/s", "better": "higher",
         "samples": [mib / q for q in seconds["qemu"]], "what": what + ", QEMU microvm"},
    ]


def step_sandbox(build, results):
    boots = setting("MSB_BENCH_BOOTS", 5, 1)
    binary = os.path.join(build, "bench", "sandbox_bench")
    timer = os.path.join(build, "bench", "guest_timer")
    return command_step(f"{shlex.quote(binary)} main --guest-timer {shlex.quote(timer)} "
                        f"--boots {boots}", env=sandbox_env(build), timeout=5400)


def step_density(build, results):
    binary = os.path.join(build, "bench", "sandbox_bench")
    # One sandbox alone was measured by the sandbox step; reuse it instead of another boot.
    alone = next((r for r in results if r["name"] == "exec.true_round_trip"), None)
    baseline = f" --baseline-ms {alone['median']:.3f}" if alone else ""
    timer = os.path.join(build, "bench", "guest_timer")
    return command_step(f"{shlex.quote(binary)} density --guest-timer {shlex.quote(timer)}"
                        f"{baseline}", env=sandbox_env(build), timeout=5400)


def sandbox_env(build):
    """A private MSB_HOME for one step, removed when the runner exits."""
    home = tempfile.mkdtemp(prefix="msb-bench-home-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return dict(os.environ, MSB_HOME=home, MSB_BIN=os.path.join(build, "msb"),
                MSB_READY_TIMEOUT="900s")


def step_run_true(build, results):
    runs = setting("MSB_BENCH_RUN_TRUE", 5, 1)
    msb = os.path.join(build, "msb")
    env = sandbox_env(build)
    wall, cpu = [], []
    for i in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        proc = subprocess.run([msb, "run", "--", "true"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=1800)
        elapsed = (time.monotonic() - start) * 1e3
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise StepFailed(f"msb run -- true exited {proc.returncode}: {proc.stderr.strip()}")
        wall.append(elapsed)
        cpu.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1e3)
        print(f"  msb run -- true #{i + 1}: {elapsed:.0f} ms wall, {cpu[-1]:.0f} ms CPU",
              flush=True)
    return [
        {"name": "run_true.wall", "unit": "ms", "samples": wall,
         "what": "`msb run -- true`: CLI start to exit, default root and resources"},
        {"name": "run_true.host_cpu", "unit": "ms", "samples": cpu,
         "what": "host CPU (user + system) of the CLI and everything it started, getrusage"},
    ]


STEPS = {
    "micro": step_micro,
    "boot": step_boot,
    "sandbox": step_sandbox,
    "run_true": step_run_true,
    "density": step_density,
    "blk": step_blk,
}


def ratios(results):
    """msb/QEMU ratios of the medians measured in this run."""
    by_name = {r["name"]: r for r in results}
    out = []
    for what in ("to_init", "end_to_end"):
        a, b = by_name.get(f"boot.msb.{what}"), by_name.get(f"boot.qemu_microvm.{what}")
        if a and b and b["median"] > 0:
            out.append(summarize({
                "name": f"ratio.msb_over_qemu.boot_{what}", "unit": "ratio",
                "samples": [a["median"] / b["median"]], "better": "lower",
                "what": f"median boot.msb.{what} / median boot.qemu_microvm.{what}"}))
    return out


def machine_info():
    info = {"hostname": platform.node(), "kernel": platform.release(),
            "cpus": os.cpu_count() or 0, "cpu_model": "", "memory_mib": 0,
            "kvm": "none"}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory_mib"] = int(line.split()[1]) // 1024
                    break
    except OSError:
        pass
    if os.path.exists("/dev/kvm"):
        info["kvm"] = "pvm" if on_pvm() else "hardware"
    return info


def git_revision():
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True).stdout.strip()
    return git("rev-parse", "HEAD") or "unknown", bool(git("status", "--porcelain"))


def table(results):
    lines = [f"{'benchmark':<44} {'median':>12} {'min':>12} {'max':>12} {'p99':>12}  unit  (n)"]
    for r in results:
        lines.append(f"{r['name']:<44} {r['median']:>12.4g} {r['min']:>12.4g} {r['max']:>12.4g} "
                     f"{r['p99']:>12.4g}  {r['unit']}  ({len(r['samples'])})")
    return "\n".join(lines)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    parser.add_argument("--out", default=None, help="default: BUILD/bench/results.json")
    parser.add_argument("--only", default=",".join(STEPS), help="comma-separated steps")
    parser.add_argument("--step", action="append", default=[], metavar="NAME=COMMAND")
    args = parser.parse_args(argv)
    build = os.path.abspath(args.build)
    out_path = args.out or os.path.join(build, "bench", "results.json")

    steps = []
    for name in filter(None, args.only.split(",")):
        if name not in STEPS:
            parser.error(f"unknown step '{name}' (steps: {', '.join(STEPS)})")
        steps.append((name, lambda done, f=STEPS[name]: f(build, done)))
    for spec in args.step:
        name, sep, command = spec.partition("=")
        if not sep or not name or not command:
            parser.error(f"--step needs NAME=COMMAND, got '{spec}'")
        steps.append((name, lambda done, c=command: command_step(c)))

    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    results, failures, timings = [], [], {}
    for name, fn in steps:
        print(f"== {name}", flush=True)
        s0 = time.monotonic()
        try:
            figures = [summarize(f) for f in fn(results)]
            results.extend(figures)
        except Exception as e:  # noqa: BLE001 — any failure of a step is reported, not fatal
            failures.append({"step": name, "error": str(e)})
            print(f"bench: step {name} FAILED: {e}", file=sys.stderr, flush=True)
        timings[name] = round(time.monotonic() - s0, 1)
    results.extend(ratios(results))

    revision, dirty = git_revision()
    document = {
        "schema_version": SCHEMA_VERSION,
        "git_revision": revision,
        "git_dirty": dirty,
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - t0, 1),
        "step_duration_s": timings,
        "machine": machine_info(),
        "results": results,
        "failures": failures,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    print()
    print(table(results))
    print(f"\n{len(results)} figures in {document['duration_s']:.0f} s; written to {out_path}")
    if failures:
        for failure in failures:
            print(f"bench: FAILED {failure['step']}: {failure['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
