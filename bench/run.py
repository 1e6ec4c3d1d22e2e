#!/usr/bin/env python3
"""Benchmark echo-server against its peers, side by side in one run.

Builds echo-server and echo-client (release) and the peers in bench/peers,
then, for each scenario and each pass, runs every server in turn: the
server pinned to CPU 0, `echo-client bench` pinned to CPU 1, a fresh server
process per run, or for the steady-rate scenarios every server up at once
and the client run against each in short interleaved slices. Also
measures the ceilings (iperf3 over loopback, the one-thread syscall floor)
and the syscalls per echoed message (strace -c).
Reports the median of the passes, ratios against tokio current_thread,
and whether each target of issues #3 and #18 is met.

    python3 bench/run.py                  # full run: BENCHMARKS.md, graphs, results
    python3 bench/run.py --tiny           # CI: tiny sizes, output in a temp dir
    python3 bench/run.py --only lat,bulk --servers echo-server,tokio-current

Python 3.11, standard library only. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import graphs
import kernel_tcp
import report
import slices
from catalog import (
    CLIENT_CPU,
    LOCALHOST,
    SCENARIOS,
    SCENARIOS_BY_NAME,
    SERVER_CPU,
    SERVERS,
    SERVERS_BY_NAME,
    STRACE_ARGS,
    Binaries,
    Options,
    Scenario,
    Server,
)
from figures import evaluate_targets, median_figures, summarize

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS_MANIFEST = BENCH / "peers" / "Cargo.toml"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"

SERVER_START_TIMEOUT = 10.0  # seconds for a server to accept connections
SERVER_STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
CLIENT_SLACK = 90.0  # seconds a client may take beyond warmup + duration
GROUP_SETTLE_TIMEOUT = 60.0  # seconds for a forking server's children to exit
FORK_COOLDOWN = 2.0  # seconds of quiet after they have (see settle_group)


# --------------------------------------------------------------------------
# What this machine offers


@dataclass
class Env:
    """What the machine offers; decided once, before anything runs."""

    binaries: Binaries
    pin: bool  # taskset available and at least 2 CPUs
    tools: dict[str, str | None]  # tool -> path, None when missing
    work: Path  # server logs, strace output
    failures: list[str] = field(default_factory=list)
    # A peer that fails under load (socat's forks, say) is a finding about
    # the peer, not a broken harness: reported, but the run still succeeds.
    peer_failures: list[str] = field(default_factory=list)

    def pinned(self, cpu: int, argv: list[str]) -> list[str]:
        return ["taskset", "-c", str(cpu), *argv] if self.pin else argv

    def fail(self, what: str) -> None:
        print(f"FAIL: {what}", flush=True)
        self.failures.append(what)

    def peer_fail(self, what: str) -> None:
        print(f"PEER FAILED: {what}", flush=True)
        self.peer_failures.append(what)


# --------------------------------------------------------------------------
# Command line and environment


def parse_options(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(
        description="Benchmark echo-server against tokio, plain mio and socat echo servers.",
        epilog="Scenarios: " + ", ".join(s.name for s in SCENARIOS) + ". Servers: " + ", ".join(s.name for s in SERVERS) + ".",
    )
    p.add_argument("--tiny", action="store_true", help="CI size: every scenario tiny, 1 pass, output in a temp dir; BENCHMARKS.md and the graphs are not touched")
    p.add_argument("--passes", type=int, help="passes per (scenario, server); the median is reported (default 3, --tiny 1)")
    p.add_argument("--duration", type=float, help="measured seconds per client run (default 5, --tiny 0.3)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each (default 1, --tiny 0)")
    p.add_argument("--only", help="comma-separated scenarios to run")
    p.add_argument("--servers", help="comma-separated servers to run")
    a = p.parse_args(argv)

    passes = a.passes if a.passes is not None else (1 if a.tiny else 3)
    duration = a.duration if a.duration is not None else (0.3 if a.tiny else 5.0)
    warmup = a.warmup if a.warmup is not None else (0.0 if a.tiny else 1.0)
    if passes < 1 or duration <= 0 or warmup < 0:
        p.error("--passes must be >= 1, --duration > 0, --warmup >= 0")
    scenarios = pick(p, a.only, SCENARIOS_BY_NAME, "scenario")
    servers = pick(p, a.servers, SERVERS_BY_NAME, "server")

    if a.tiny:
        out_dir = Path(tempfile.mkdtemp(prefix="echo-bench-tiny-"))
        markdown = out_dir / "BENCHMARKS.md"
    else:
        out_dir, markdown = BENCH, BENCHMARKS_MD
    return Options(
        tiny=a.tiny,
        passes=passes,
        duration=duration,
        warmup=warmup,
        scenarios=scenarios,
        servers=servers,
        strace_requests=2_000 if a.tiny else 100_000,
        floor_count=5_000 if a.tiny else 200_000,
        iperf_seconds=1 if a.tiny else max(1, round(duration)),
        out_dir=out_dir,
        markdown=markdown,
        command=shlex.join(["python3", "bench/run.py", *argv]),
    )


def pick(p: argparse.ArgumentParser, names: str | None, known: dict[str, Any], what: str) -> list[Any]:
    """The items named in a comma-separated option, all of them if absent."""
    if not names:
        return list(known.values())
    chosen = []
    for name in names.split(","):
        if name.strip() not in known:
            p.error(f"unknown {what} {name!r}; choose from {', '.join(known)}")
        chosen.append(known[name.strip()])
    return chosen


def find_tools() -> tuple[dict[str, str | None], list[str]]:
    """Locates the external tools; says SKIP for each missing one, or fails
    when ECHO_SERVER_REQUIRE_TOOLS=1 (as CI sets it)."""
    require = os.environ.get("ECHO_SERVER_REQUIRE_TOOLS") == "1"
    tools = {name: shutil.which(name) for name in ("taskset", "socat", "iperf3", "strace")}
    uses = {
        "taskset": "server and client run unpinned",
        "socat": "the socat peer is left out",
        "iperf3": "no loopback bulk ceiling",
        "strace": "no syscall counts",
    }
    missing = []
    for name, path in tools.items():
        if path is None:
            if require:
                missing.append(name)
            else:
                print(f"SKIP: {name} not installed: {uses[name]} (Debian: apt-get install {name if name != 'taskset' else 'util-linux'})")
    return tools, missing


def can_pin(tools: dict[str, str | None]) -> bool:
    if tools["taskset"] is None:
        return False
    cpus = os.sched_getaffinity(0)
    if not {SERVER_CPU, CLIENT_CPU} <= cpus:
        print(f"SKIP: pinning: CPUs {SERVER_CPU} and {CLIENT_CPU} are not both available (have {sorted(cpus)})")
        return False
    return True


def raise_open_file_limit(need: int) -> None:
    """Children inherit our RLIMIT_NOFILE: 10,000 connections need more than
    the usual soft limit of 1,024, in the client and in each server."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:  # only root may raise the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            print(f"WARN: open file limit {hard} < {need}: the 10,000-connection scenario may fail")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --------------------------------------------------------------------------
# Building


def build() -> Binaries:
    """Release builds of the crate's binaries and of the peers, honouring
    CARGO_TARGET_DIR like cargo does."""
    run_checked(["cargo", "build", "--release", "--bins"], cwd=REPO, what="cargo build (echo-server, echo-client)")
    run_checked(["cargo", "build", "--release", "--manifest-path", str(PEERS_MANIFEST)], cwd=REPO, what="cargo build (peers)")
    shared = os.environ.get("CARGO_TARGET_DIR")
    main_dir = Path(shared) if shared else REPO / "target"
    peers_dir = Path(shared) if shared else BENCH / "peers" / "target"
    if not main_dir.is_absolute():
        main_dir = REPO / main_dir
        peers_dir = REPO / peers_dir
    bins = Binaries(
        echo_server=main_dir / "release" / "echo-server",
        echo_client=main_dir / "release" / "echo-client",
        tokio_echo=peers_dir / "release" / "tokio-echo",
        mio_echo=peers_dir / "release" / "mio-echo",
        syscall_floor=peers_dir / "release" / "syscall-floor",
    )
    for path in vars(bins).values():
        if not path.is_file():
            sys.exit(f"error: {path} was not built (is the echo-client binary in this checkout?)")
    return bins


def run_checked(argv: list[str], cwd: Path, what: str) -> None:
    print(f"== {what}: {shlex.join(argv)}", flush=True)
    try:
        subprocess.run(argv, cwd=cwd, check=True, timeout=1800)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        sys.exit(f"error: {what} failed: {e}")


# --------------------------------------------------------------------------
# Processes


def free_port() -> int:
    """A port nobody listens on right now (a fresh one per server, so the
    previous run's TIME_WAIT sockets never collide with the next)."""
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(env: Env, server: Server, port: int, log_name: str) -> Iterator[subprocess.Popen]:
    """Starts a server pinned to the server CPU, waits until it accepts
    connections, and always stops it. Its output goes to a log file."""
    log = (env.work / f"{log_name}.log").open("wb")
    proc = subprocess.Popen(
        env.pinned(SERVER_CPU, server.argv(env.binaries, port)),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: socat's children too
    )
    try:
        wait_accepting(proc, port, log.name)
        yield proc
    finally:
        stop(proc)
        if server.forks:
            settle_forks(proc.pid, 0)
        log.close()


def wait_accepting(proc: subprocess.Popen, port: int, log: str) -> None:
    """Polls with a connect: the one readiness check that works for every
    server, socat included (it prints nothing when ready)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} at start; see {log}")
        try:
            with socket.create_connection((LOCALHOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server not accepting on port {port} after {SERVER_START_TIMEOUT:.0f} s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group we created, SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=SERVER_STOP_TIMEOUT)
    # Children of a forking server (socat) that outlived their parent. While
    # any is alive the kernel keeps the group's id reserved, so this cannot
    # reach a process we did not start.
    if group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def group_size(pgid: int) -> int:
    """How many processes (zombies included) are in process group `pgid`."""
    size = 0
    # Not Path.glob: it stats each entry, and one whose process exits in
    # between raises ProcessLookupError from inside the iteration.
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{pid}/stat") as f:
                # Fields after the ")" closing the command name: state, ppid, pgrp.
                if int(f.read().rsplit(")", 1)[1].split()[2]) == pgid:
                    size += 1
    return size


def group_alive(pgid: int) -> bool:
    """Whether any process is still in process group `pgid`."""
    return group_size(pgid) > 0


def settle_forks(pgid: int, at_most: int) -> None:
    """For a forking server: waits until its process group `pgid` is down to
    `at_most` processes, then FORK_COOLDOWN more.

    A forking server's children (socat's, one per connection) exit after
    the client has gone. The server measured next paid for that: with the
    servers' order only rotated, echo-server came after socat in every
    pass, and its p99 at 1,000 connections was 1.5-1.65x tokio's. Run
    directly, a server right after socat's children were gone still showed
    it (though CPU 0 was idle again within 0.25 s; we did not find what
    lingers), and 2 s later no longer did."""
    deadline = time.monotonic() + GROUP_SETTLE_TIMEOUT
    while group_size(pgid) > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(FORK_COOLDOWN)


def read_kib(path: str, key: str) -> int | None:
    """A `Key:  123 kB` line of a /proc file (status, meminfo), in KiB."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def thread_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


# --------------------------------------------------------------------------
# Measurements


def bench_json(env: Env, port: int, args: list[str], timeout: float) -> tuple[dict | None, str | None]:
    """Runs `echo-client bench` pinned to the client's CPU; returns its JSON
    document, or an error. `--rtt-clock`: latencies by the clock, as every
    earlier run measured them, and no host-wide receive timestamping to
    load the client and the server (README, "bench")."""
    argv = env.pinned(CLIENT_CPU, [str(env.binaries.echo_client), "bench", f"{LOCALHOST}:{port}", *args, "--rtt-clock", "--json", "--quiet"])
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"echo-client timed out after {timeout:.0f} s"
    doc = None
    with contextlib.suppress(json.JSONDecodeError):
        doc = json.loads(p.stdout)
    if p.returncode != 0 or not isinstance(doc, dict):
        tail = (p.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return doc if isinstance(doc, dict) else None, f"echo-client exit {p.returncode}: {tail}"
    return doc, None


def run_client(env: Env, port: int, args: list[str], timeout: float) -> tuple[dict | None, str | None]:
    """`bench_json`, and an error when an echo was wrong or none counted."""
    doc, error = bench_json(env, port, args, timeout)
    if error is not None or doc is None:
        return doc, error
    if doc.get("mismatches"):
        return doc, f"{doc['mismatches']} mismatched echoes"
    if not doc.get("messages"):
        return doc, "no message echoed in the measured window"
    return doc, None


def bench_once(env: Env, opts: Options, scenario: Scenario, server: Server, pass_no: int) -> dict:
    """One (scenario, server, pass): a fresh server, one client run."""
    port = free_port()
    run: dict[str, Any] = {"scenario": scenario.name, "server": server.name, "pass": pass_no}
    try:
        with running_server(env, server, port, f"{scenario.name}-{server.name}-{pass_no}") as proc:
            run["server_threads"] = thread_count(proc.pid)
            # Baseline for RSS per connection: the idle server just before the client.
            run["rss_before_kib"] = read_kib(f"/proc/{proc.pid}/status", "VmRSS")
            args = scenario.client_args(opts.duration, opts.warmup, opts.tiny) + ["--server-pid", str(proc.pid)]
            timeout = scenario.seconds(opts.duration, opts.warmup) + CLIENT_SLACK
            before = kernel_tcp.snapshot()
            run["client"], error = run_client(env, port, args, timeout)
            run["kernel_tcp"] = kernel_tcp.delta(before, kernel_tcp.snapshot())
    except RuntimeError as e:
        error = str(e)
    return settled(env, scenario, run, error)


def settled(env: Env, scenario: Scenario, run: dict, error: str | None) -> dict:
    """Records a run's outcome: a failure (the harness's or a peer's) or its line."""
    run["error"] = error
    where = f"{scenario.name} / {run['server']} / pass {run['pass']}"
    if error and run["server"] != "echo-server":
        env.peer_fail(f"{where}: {error}")
    elif error:
        env.fail(f"{where}: {error}")
    else:
        print(report.describe_run(run, scenario), flush=True)
    return run


def bench_sliced(env: Env, opts: Options, scenario: Scenario, servers: list[Server], pass_no: int) -> list[dict]:
    """One pass of a sliced scenario (slices.py): every server up at once,
    the client run against each in turn for 1/k of the duration (and of the
    warmup), k rounds, each round starting one server further on."""
    k = opts.slices(scenario)
    duration, warmup = opts.duration / k, scenario.warmup_s(opts.warmup) / k
    args = scenario.client_args(duration, warmup, opts.tiny)
    timeout = scenario.seconds(duration, warmup) + CLIENT_SLACK
    runs = {s.name: {"scenario": scenario.name, "server": s.name, "pass": pass_no} for s in servers}
    docs: dict[str, list[dict]] = {s.name: [] for s in servers}
    counters: dict[str, list[dict]] = {s.name: [] for s in servers}
    errors: dict[str, str | None] = {s.name: None for s in servers}
    pids: dict[str, int] = {}
    ports: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        for server in servers:
            port = free_port()
            try:
                proc = stack.enter_context(running_server(env, server, port, f"{scenario.name}-{server.name}-{pass_no}"))
            except RuntimeError as e:
                errors[server.name] = str(e)
                continue
            pids[server.name], ports[server.name] = proc.pid, port
            runs[server.name]["server_threads"] = thread_count(proc.pid)
            runs[server.name]["rss_before_kib"] = read_kib(f"/proc/{proc.pid}/status", "VmRSS")
        for round_no in range(k):
            for server in rotated(servers, round_no):
                name = server.name
                if errors[name]:
                    continue  # a server that failed once is out of this pass
                before = kernel_tcp.snapshot()
                doc, error = run_client(env, ports[name], args + ["--server-pid", str(pids[name])], timeout)
                counters[name].append(kernel_tcp.delta(before, kernel_tcp.snapshot()))
                if server.forks:
                    settle_forks(pids[name], 1)  # only the listening parent left
                if error:
                    errors[name] = f"slice {round_no + 1}/{k}: {error}"
                    runs[name]["client"] = doc
                elif doc is not None:
                    docs[name].append(doc)
    out = []
    for server in servers:
        run = runs[server.name]
        if not errors[server.name]:
            run["client"] = slices.merge_client(docs[server.name])
        run["kernel_tcp"] = slices.merge_counters(counters[server.name])
        out.append(settled(env, scenario, run, errors[server.name]))
    return out


def iperf3_ceiling(env: Env, opts: Options) -> tuple[float | None, dict[str, int]]:
    """One-direction loopback TCP MB/s (10^6 bytes/s) as iperf3 measures it,
    pinned like the servers and the client, and the kernel's TCP counters
    over that run."""
    if env.tools["iperf3"] is None:
        return None, {}
    port = free_port()
    log = env.work / f"iperf3-server-{port}.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            env.pinned(SERVER_CPU, ["iperf3", "-s", "-1", "--forceflush", "-B", LOCALHOST, "-p", str(port)]),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            # A probe connection would be taken as iperf3's one test: wait for
            # its banner instead (--forceflush: stdout is a file).
            if not wait_for_text(log, "Server listening", server):
                env.fail(f"iperf3 server did not start; see {log}")
                return None, {}
            argv = env.pinned(CLIENT_CPU, ["iperf3", "-c", LOCALHOST, "-p", str(port), "-J", "-t", str(opts.iperf_seconds)])
            before = kernel_tcp.snapshot()
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=opts.iperf_seconds + 30)
            counters = kernel_tcp.delta(before, kernel_tcp.snapshot())
            bps = json.loads(p.stdout)["end"]["sum_received"]["bits_per_second"]
            return bps / 8 / 1e6, counters
        except (subprocess.TimeoutExpired, json.JSONDecodeError, KeyError) as e:
            env.fail(f"iperf3 client: {e!r}")
            return None, {}
        finally:
            stop(server)


def wait_for_text(path: Path, text: str, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if text in path.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def syscall_floor(env: Env, opts: Options) -> dict | None:
    """The one-thread loopback read+write floor for a 64 B message."""
    argv = env.pinned(SERVER_CPU, [str(env.binaries.syscall_floor), "--size", "64", "--count", str(opts.floor_count), "--json"])
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        return json.loads(p.stdout)
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        env.fail(f"syscall-floor: {e!r}")
        return None


def count_syscalls(env: Env, opts: Options, server: Server) -> dict | None:
    """Attaches `strace -c -f` to a running server for a fixed number of
    messages (50 x 64 B, depth 1) and divides its total by them."""
    port = free_port()
    name = f"strace-{server.name}"
    try:
        with running_server(env, server, port, name) as proc:
            table, trace_log = env.work / f"{name}.txt", env.work / f"{name}.stderr"
            with trace_log.open("wb") as err:
                tracer = subprocess.Popen(
                    ["strace", "-c", "-f", "-o", str(table), "-p", str(proc.pid)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                )
            try:
                if not wait_for_text(trace_log, "attached", tracer):
                    raise RuntimeError(f"strace could not attach; see {trace_log}")
                time.sleep(0.2)  # -f attaches to each thread in turn
                args = STRACE_ARGS + ["--requests", str(opts.strace_requests)]
                doc, error = run_client(env, port, args, CLIENT_SLACK * 2)
            finally:
                tracer.send_signal(signal.SIGINT)  # detach and write the table
                try:
                    tracer.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    tracer.kill()
                    tracer.wait()
        if error:
            raise RuntimeError(error)
        calls = parse_strace_table(table.read_text())
    except (RuntimeError, OSError, ValueError) as e:
        env.fail(f"strace / {server.name}: {e}")
        return None
    total = sum(calls.values())
    result = {"messages": doc["messages"], "calls": total, "per_message": total / doc["messages"], "by_syscall": calls}
    print(f"   syscalls  {server.name:<14} {result['per_message']:.3f} per message ({total} calls / {doc['messages']} messages)", flush=True)
    return result


def parse_strace_table(text: str) -> dict[str, int]:
    """The calls column of `strace -c` per syscall, without the total row:
    `% time  seconds  usecs/call  calls  [errors]  syscall`."""
    calls = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and re.fullmatch(r"[\d.]+", parts[0]) and parts[3].isdigit():
            if parts[-1] != "total":
                calls[parts[-1]] = int(parts[3])
    if not calls:
        raise ValueError("strace wrote no syscall table")
    return calls


# --------------------------------------------------------------------------
# The machine


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = read_kib("/proc/meminfo", "MemTotal")
    u = platform.uname()
    return {
        "cpu": cpu,
        "nproc": len(os.sched_getaffinity(0)),  # what `nproc` prints
        "memory_gib": round(mem_kib / 1024 / 1024, 1) if mem_kib else None,
        "kernel": f"{u.system} {u.release} {u.machine}",
        "tcp_congestion_control": kernel_tcp.congestion_control(),
        "rustc": first_line(["rustc", "--version"]),
        "socat": first_line(["socat", "-V"], match="socat version"),
        "iperf3": first_line(["iperf3", "--version"]),
        "strace": first_line(["strace", "-V"]),
    }


def first_line(argv: list[str], match: str = "") -> str | None:
    """The first (or first matching) line a tool prints about its version."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None
    lines = [line.strip() for line in (p.stdout + p.stderr).splitlines() if match in line and line.strip()]
    return lines[0] if lines else None


# --------------------------------------------------------------------------
# The run


def rotated(items: list, k: int) -> list:
    k %= len(items)
    return items[k:] + items[:k]


def pinning_note(env: Env) -> str:
    if not env.pin:
        return "none (taskset missing or fewer than 2 CPUs): server and client share the CPUs"
    return (
        f"every server on CPU {SERVER_CPU}, echo-client on CPU {CLIENT_CPU}. The tokio multi-thread "
        f"runtime is pinned to CPU {SERVER_CPU} too, so it runs one worker (tokio sizes its pool from the "
        "CPUs the process may use): each server then has the same single CPU, and its CPU per message "
        "is not hidden by borrowing the client's core"
    )


def run_passes(env: Env, opts: Options) -> tuple[list[dict], list[dict]]:
    """All passes: the ceilings, then every scenario with every server."""
    runs, ceiling_runs = [], []
    for pass_no in range(1, opts.passes + 1):
        print(f"\n== Pass {pass_no}/{opts.passes}", flush=True)
        iperf3_mb_per_s, iperf3_tcp = iperf3_ceiling(env, opts)
        c = {"pass": pass_no, "iperf3_mb_per_s": iperf3_mb_per_s, "iperf3_retrans_segs": iperf3_tcp.get("retrans_segs")}
        floor = syscall_floor(env, opts)
        c["floor_round_trip_ns"] = floor and floor["round_trip_ns"]
        c["floor_server_ns"] = floor and floor["server_read_write_ns"]
        print(f"   ceilings  iperf3 {report.fmt(c['iperf3_mb_per_s'])} MB/s; floor {report.fmt(c['floor_round_trip_ns'])} ns/round trip, "
              f"{report.fmt(c['floor_server_ns'])} ns/server read+write", flush=True)
        ceiling_runs.append(c)
        for scenario in opts.scenarios:
            servers = rotated(opts.servers, pass_no - 1)
            if opts.slices(scenario) > 1:
                runs += bench_sliced(env, opts, scenario, servers, pass_no)
            else:
                runs += [bench_once(env, opts, scenario, server, pass_no) for server in servers]
    return runs, ceiling_runs


def main(argv: list[str]) -> int:
    import modes  # the service modes' scenarios have their own servers and tables
    import tls  # so have the TLS scenarios (issue 20)

    if modes.is_mode_run(argv):
        return modes.main(argv)
    import udp  # UDP echo's scenarios (issue 21) have their own load, servers and table

    if udp.is_udp_run(argv):
        return udp.main(argv)
    if tls.is_tls_run(argv):
        return tls.main(argv)
    opts = parse_options(argv)
    tools, missing = find_tools()
    if missing:
        print(f"error: ECHO_SERVER_REQUIRE_TOOLS=1 and not installed: {', '.join(missing)}")
        return 1
    opts.servers = [s for s in opts.servers if s.tool is None or tools[s.tool]]
    if not opts.servers:
        print("error: none of the chosen servers can run here")
        return 1
    # Per process: the client and each server hold one descriptor per connection.
    raise_open_file_limit(max(s.connections for s in SCENARIOS) + 1024)
    started = time.monotonic()
    env = Env(binaries=build(), pin=can_pin(tools), tools=tools, work=Path(tempfile.mkdtemp(prefix="echo-bench-")))
    print(f"== Pinning: {pinning_note(env)}\n== Server logs: {env.work}", flush=True)

    runs, ceiling_runs = run_passes(env, opts)
    syscalls = {}
    if tools["strace"]:
        print("\n== Syscalls per echoed message (strace -c -f)", flush=True)
        for server in opts.servers:
            if (r := count_syscalls(env, opts, server)) is not None:
                syscalls[server.name] = r

    summary = summarize(opts.scenarios, opts.servers, runs)
    ceilings = median_figures([{k: v for k, v in c.items() if k != "pass"} for c in ceiling_runs])
    targets = evaluate_targets(summary, ceilings, syscalls, runs)
    report.print_targets(targets, opts.tiny)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "command": opts.command,
        "tiny": opts.tiny,
        "passes": opts.passes,
        "duration_s": opts.duration,
        "warmup_s": opts.warmup,
        "pinning": pinning_note(env),
        "machine": machine_info(),
        "ceilings": ceilings,
        "ceiling_runs": ceiling_runs,
        "syscalls": syscalls,
        "summary": summary,
        "targets": [vars(t) for t in targets],
        "runs": runs,
        "failures": env.failures,
        "peer_failures": env.peer_failures,
        "wall_s": round(time.monotonic() - started, 1),
    }
    write_outputs(opts, results)
    if opts.tiny:
        tls.tiny_rows(env)
    if env.peer_failures:
        print(f"\n{len(env.peer_failures)} peer run(s) failed (reported, not fatal):")
        for f in env.peer_failures:
            print(f"   {f}")
    if env.failures:
        print(f"\n{len(env.failures)} failure(s); server logs kept in {env.work}:")
        for f in env.failures:
            print(f"   {f}")
        return 1
    shutil.rmtree(env.work, ignore_errors=True)
    print(f"\nDone in {results['wall_s']:.0f} s.")
    return 0


def write_outputs(opts: Options, results: dict) -> None:
    """Results JSON, graphs and BENCHMARKS.md (all in a temp dir under --tiny)."""
    results_dir = opts.out_dir / "results" if not opts.tiny else opts.out_dir
    graphs_dir = opts.out_dir / "graphs" if not opts.tiny else opts.out_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    graphs_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    names = [s.name for s in opts.servers]
    graphs.latency_graph(graphs_dir / "latency.svg", results["summary"], names)
    graphs.throughput_graph(graphs_dir / "throughput.svg", results["summary"], names, results["ceilings"].get("iperf3_mb_per_s"))
    report.write_markdown(opts.markdown, report.markdown_block(opts, results))
    print(f"\n== Wrote {results_dir / 'latest.json'}, {graphs_dir}/latency.svg, throughput.svg, {opts.markdown}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
