"""The service modes' scenarios (issue 19), run by bench/run.py when
`--only` names only these: discard and chargen MB/s and server CPU per MB
for echo-server (`--mode discard|chargen`), xinetd's built-in services and
socat; framed frames/s at 50 connections; the wait of an echo frame while
the prime workers are saturated, against idle.

    python3 bench/run.py --only discard,chargen --servers xinetd,socat --passes 1 --duration 1
    python3 bench/run.py --only discard,chargen,framed50,framedwait

A server whose `--help` lacks `--mode` (an echo-server before issue 19) is
left out with a `SKIP:` line. Server CPU is read from /proc for the
server's whole process group (xinetd and socat fork a process per
connection, which `--server-pid` would miss), over the client's whole run,
and divided by the client's total bytes in the measured direction.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import run as harness
from catalog import LOCALHOST, SERVER_CPU

BEGIN, END = "<!-- BEGIN MODES GENERATED -->", "<!-- END MODES GENERATED -->"
# Just under 2^63 and prime: trial division to its square root keeps a
# worker busy for seconds, the load the offload exists to absorb.
LONG_PRIME = 9_223_372_036_854_775_783
WORKERS = 2  # echo-server --workers in the framed scenarios
LOADERS_PER_WORKER = 2  # connections sending long checks, per worker
CHECKS_PER_LOADER = 4  # long checks each loader sends (under the per-connection bound)

CHARGEN_GEN = r"""
import sys
ring = bytes(range(32, 127))
cycle = b"".join(bytes((ring * 2)[k:k + 72]) + b"\r\n" for k in range(95))
block = cycle * 64
w = sys.stdout.buffer.write
try:
    while True:
        w(block)
except (BrokenPipeError, OSError):
    pass
"""


@dataclass(frozen=True)
class ModeServer:
    name: str
    label: str
    # argv for a mode and port; None when it has no such service.
    argv: Callable[[Path, str, int, Path], list[str] | None]
    tool: str | None = None


def echo_server_argv(b: Path, mode: str, port: int, work: Path) -> list[str]:
    extra = ["--workers", str(WORKERS)] if mode == "framed" else []
    return [str(b), "--port", str(port), "--bind", LOCALHOST, "--mode", mode, *extra]


def xinetd_argv(b: Path, mode: str, port: int, work: Path) -> list[str] | None:
    if mode not in ("discard", "chargen"):
        return None
    user = "\tuser = root\n" if os.geteuid() == 0 else ""
    conf = work / f"xinetd-{mode}-{port}.conf"
    conf.write_text(
        "defaults\n{\n}\n"
        f"service {mode}\n{{\n\ttype = INTERNAL UNLISTED\n\tid = {mode}-stream\n\tsocket_type = stream\n"
        f"\tprotocol = tcp\n\twait = no\n{user}\tbind = {LOCALHOST}\n\tport = {port}\n}}\n"
    )
    return ["xinetd", "-dontfork", "-f", str(conf), "-pidfile", str(work / f"xinetd-{port}.pid")]


def socat_argv(b: Path, mode: str, port: int, work: Path) -> list[str] | None:
    listen = f"TCP-LISTEN:{port},fork,reuseaddr,bind={LOCALHOST},backlog=1024"
    if mode == "discard":
        # -u: from the connection to /dev/null only; the client's FIN ends
        # the child, whose close is the FIN back.
        return ["socat", "-u", listen, "OPEN:/dev/null,wronly"]
    if mode == "chargen":
        gen = work / "chargen.py"
        gen.write_text(CHARGEN_GEN)
        # -U: from the generator to the connection only.
        return ["socat", "-U", listen, f"SYSTEM:{shlex.quote(sys.executable)} {gen}"]
    return None


SERVERS = [
    ModeServer("echo-server", "echo-server --mode", echo_server_argv),
    ModeServer("xinetd", "xinetd (built-in)", xinetd_argv, tool="xinetd"),
    ModeServer("socat", "socat fork", socat_argv, tool="socat"),
]
SERVERS_BY_NAME = {s.name: s for s in SERVERS}


@dataclass(frozen=True)
class ModeScenario:
    name: str
    title: str
    mode: str  # the server's --mode
    args: list[str]  # echo-client bench flags besides duration and warmup
    unit: str  # what the table shows: "MB/s" or "frames/s" or "wait"


SCENARIOS = [
    ModeScenario("discard", "discard: 1 connection, 64 KiB writes (upload MB/s)", "discard", ["--mode", "discard", "--size", "64K"], "MB/s"),
    ModeScenario("chargen", "chargen: 1 connection, 64 KiB reads, RFC 864 checked (download MB/s)", "chargen", ["--mode", "chargen", "--size", "64K"], "MB/s"),
    ModeScenario("framed50", "framed: 50 connections x 64 B echo frames, depth 1 (frames/s)", "framed", ["--mode", "framed", "-c", "50", "--size", "64"], "frames/s"),
    ModeScenario(
        "framedwait",
        f"framed: 1 connection x 64 B echo frames while {WORKERS} workers idle, then saturated with long prime checks (latency)",
        "framed", ["--mode", "framed", "-c", "1", "--size", "64"], "wait",
    ),
]
SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}


def only_names(argv: list[str], names: set[str]) -> bool:
    """Whether `--only` names only scenarios among `names`."""
    for i, a in enumerate(argv):
        given = a.split("=", 1)[1] if a.startswith("--only=") else argv[i + 1] if a == "--only" and i + 1 < len(argv) else None
        if given is not None:
            chosen = {n.strip() for n in given.split(",")}
            return bool(chosen) and chosen <= names
    return False


def is_mode_run(argv: list[str]) -> bool:
    """Whether `--only` names only the scenarios of this file."""
    return only_names(argv, set(SCENARIOS_BY_NAME))


def parse_options(argv: list[str], prog: str, what: str, servers: dict, scenarios: dict, passes: int = 3) -> argparse.Namespace:
    """The options of a family of scenarios with servers of its own (this
    file's, bench/udp.py's or bench/tls.py's)."""
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--only", required=True)
    p.add_argument("--servers", default=",".join(servers))
    p.add_argument("--passes", type=int, default=passes)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--tiny", action="store_true")
    a = p.parse_args(argv)
    if a.tiny:
        a.passes, a.duration, a.warmup = 1, 0.3, 0.0
    if a.passes < 1 or a.duration <= 0 or a.warmup < 0:
        p.error("--passes must be >= 1, --duration > 0, --warmup >= 0")
    for n in a.servers.split(","):
        if n not in servers:
            p.error(f"unknown server {n!r} for {what}; choose from {', '.join(servers)}")
    a.scenario_list = [scenarios[n.strip()] for n in a.only.split(",")]
    a.server_list = [servers[n] for n in a.servers.split(",")]
    a.command = shlex.join(["python3", "bench/run.py", *argv])
    return a


def parse(argv: list[str]) -> argparse.Namespace:
    return parse_options(argv, "bench/run.py (service modes)", "the mode scenarios", SERVERS_BY_NAME, SCENARIOS_BY_NAME)


def installed(servers: list) -> list | None:
    """The servers whose tool is installed (a SKIP line for each other);
    None when one is missing and ECHO_SERVER_REQUIRE_TOOLS=1 forbids that."""
    require = os.environ.get("ECHO_SERVER_REQUIRE_TOOLS") == "1"
    kept = []
    for s in servers:
        if s.tool and shutil.which(s.tool) is None:
            if require:
                print(f"error: ECHO_SERVER_REQUIRE_TOOLS=1 and not installed: {s.tool}")
                return None
            print(f"SKIP: {s.tool} not installed: the {s.name} peer is left out (Debian: apt-get install {s.tool})")
            continue
        kept.append(s)
    return kept


def group_cpu_s(pgid: int) -> float:
    """CPU seconds of process group `pgid`: each member's own time and that
    of the children it has reaped (a forking server's finished children)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / tick


def has_mode_option(binary: Path) -> bool:
    p = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30)
    return "--mode" in p.stdout


@contextlib.contextmanager
def started(env: harness.Env, argv: list[str], port: int, log_name: str):
    log = (env.work / f"{log_name}.log").open("wb")
    proc = subprocess.Popen(env.pinned(SERVER_CPU, argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        harness.wait_accepting(proc, port, log.name)
        yield proc
    finally:
        harness.stop(proc)
        log.close()


def load_workers(port: int) -> list[socket.socket]:
    """Connections that keep every worker busy with long prime checks."""
    socks = []
    for _ in range(WORKERS * LOADERS_PER_WORKER):
        s = socket.create_connection((LOCALHOST, port), timeout=5)
        s.sendall(f"^P{LONG_PRIME}$".encode() * CHECKS_PER_LOADER)
        socks.append(s)
    time.sleep(0.2)  # the checks reach the workers
    return socks


def one_run(env: harness.Env, a: argparse.Namespace, sc: ModeScenario, server: ModeServer, pass_no: int) -> dict:
    port = harness.free_port()
    argv = server.argv(env.binaries.echo_server, sc.mode, port, env.work)
    run: dict = {"scenario": sc.name, "server": server.name, "pass": pass_no}
    base = sc.args + ["--duration", str(a.duration), "--warmup", str(a.warmup)]
    timeout = a.duration + a.warmup + harness.CLIENT_SLACK
    try:
        with started(env, argv, port, f"{sc.name}-{server.name}-{pass_no}") as proc:
            if sc.unit == "wait":
                run["idle"], error = harness.bench_json(env, port, base, timeout)
                if not error:
                    loaders = load_workers(port)
                    try:
                        run["saturated"], error = harness.bench_json(env, port, base, timeout)
                    finally:
                        for s in loaders:
                            s.close()
            else:
                cpu0 = group_cpu_s(proc.pid)
                run["client"], error = harness.bench_json(env, port, base, timeout)
                harness.settle_forks(proc.pid, 1)
                run["server_cpu_s"] = group_cpu_s(proc.pid) - cpu0
    except (RuntimeError, OSError) as e:
        error = str(e)
    run["error"] = error
    print(f"   {describe(sc, run)}", flush=True)
    return run


def figure(sc: ModeScenario, run: dict) -> dict:
    """The figures a table shows for one run."""
    if run.get("error"):
        return {}
    if sc.unit == "wait":
        lat = lambda d, q: d and d.get("latency_us") and d["latency_us"][q]  # noqa: E731
        return {"idle_p50_us": lat(run["idle"], "p50"), "idle_p99_us": lat(run["idle"], "p99"),
                "busy_p50_us": lat(run["saturated"], "p50"), "busy_p99_us": lat(run["saturated"], "p99")}
    doc = run["client"]
    if sc.unit == "frames/s":
        return {"frames_per_s": doc["frames_per_s"], "p99_us": doc["latency_us"] and doc["latency_us"]["p99"]}
    total = doc["total_bytes_down"] if sc.mode == "chargen" else doc["total_bytes_up"]
    cpu = run.get("server_cpu_s")
    return {"mb_per_s": doc["mb_per_s"], "cpu_ms_per_mb": round(cpu * 1e3 / (total / 1e6), 3) if total and cpu is not None else None}


def describe(sc: ModeScenario, run: dict) -> str:
    where = f"{sc.name:<10} {run['server']:<12} pass {run['pass']}"
    if run.get("error"):
        return f"{where}  FAILED: {run['error']}"
    return f"{where}  " + "  ".join(f"{k} {v}" for k, v in figure(sc, run).items())


def medians(runs: list[dict], sc: ModeScenario) -> dict:
    figs = [figure(sc, r) for r in runs if not r.get("error")]
    keys = {k for f in figs for k in f}
    return {k: statistics.median(v) for k in sorted(keys) if (v := [f[k] for f in figs if f.get(k) is not None])}


def markdown(a: argparse.Namespace, summary: dict, env: harness.Env) -> str:
    out = [f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: `{a.command}` "
           f"({a.passes} pass(es), {a.duration} s measured after {a.warmup} s). Pinning: {harness.pinning_note(env)}.", ""]
    for sc in a.scenario_list:
        rows = summary.get(sc.name, {})
        if not rows:
            continue
        out += [f"### {sc.title}", ""]
        if sc.unit == "MB/s":
            out += ["| server | MB/s | server CPU ms per MB |", "| --- | ---: | ---: |"]
            out += [f"| {n} | {f.get('mb_per_s', '-')} | {f.get('cpu_ms_per_mb', '-')} |" for n, f in rows.items()]
        elif sc.unit == "frames/s":
            out += ["| server | frames/s | p99 µs |", "| --- | ---: | ---: |"]
            out += [f"| {n} | {f.get('frames_per_s', '-')} | {f.get('p99_us', '-')} |" for n, f in rows.items()]
        else:
            out += ["| server | workers idle: p50 / p99 µs | workers saturated: p50 / p99 µs |", "| --- | ---: | ---: |"]
            out += [f"| {n} | {f.get('idle_p50_us', '-')} / {f.get('idle_p99_us', '-')} | {f.get('busy_p50_us', '-')} / {f.get('busy_p99_us', '-')} |" for n, f in rows.items()]
        out.append("")
    return "\n".join(out)


def write_block(path: Path, begin: str, end: str, heading: str, block: str) -> None:
    """Puts `block` between the markers `begin` and `end` of `path`, or at
    its end under `heading` when they are not there yet."""
    generated = f"{begin}\n{block}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + generated + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n" + generated + "\n"
    path.write_text(text)


def write_markdown(path: Path, block: str) -> None:
    write_block(path, BEGIN, END, "Service modes (issue 19)", block)


def main(argv: list[str]) -> int:
    a = parse(argv)
    servers = installed(a.server_list)
    if servers is None:
        return 1
    tools = {name: shutil.which(name) for name in ("taskset", "socat", "iperf3", "strace")}
    env = harness.Env(binaries=harness.build(), pin=harness.can_pin(tools), tools=tools, work=Path(tempfile.mkdtemp(prefix="echo-bench-modes-")))
    if any(s.name == "echo-server" for s in servers) and not has_mode_option(env.binaries.echo_server):
        print("SKIP: echo-server: its --help has no --mode (the server side of issue 19 is not in this build); left out")
        servers = [s for s in servers if s.name != "echo-server"]
    print(f"== Pinning: {harness.pinning_note(env)}\n== Server logs: {env.work}", flush=True)
    runs = []
    for pass_no in range(1, a.passes + 1):
        print(f"\n== Pass {pass_no}/{a.passes}", flush=True)
        for sc in a.scenario_list:
            for server in harness.rotated(servers, pass_no - 1) if servers else []:
                if server.argv(env.binaries.echo_server, sc.mode, 0, env.work) is None:
                    continue  # no such service (xinetd and socat have no framed)
                runs.append(one_run(env, a, sc, server, pass_no))
    summary = {sc.name: {s.name: m for s in servers if (m := medians([r for r in runs if r["scenario"] == sc.name and r["server"] == s.name], sc))} for sc in a.scenario_list}
    failures = [r for r in runs if r.get("error")]
    if not runs:
        print("\nNothing ran: no results written.")
        return 0
    out_dir = Path(tempfile.mkdtemp(prefix="echo-bench-modes-out-")) if a.tiny else harness.BENCH / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "modes.json").write_text(json.dumps({"command": a.command, "summary": summary, "runs": runs}, indent=1) + "\n")
    md = out_dir / "BENCHMARKS.md" if a.tiny else harness.BENCHMARKS_MD
    write_markdown(md, markdown(a, summary, env))
    print(f"\n== Wrote {out_dir / 'modes.json'} and {md}")
    for r in failures:
        print(f"FAIL: {r['scenario']} / {r['server']} / pass {r['pass']}: {r['error']}")
    # As in run.py: a peer's failure is reported; echo-server's fails the run.
    return 1 if any(r["server"] == "echo-server" for r in failures) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
