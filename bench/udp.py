"""UDP echo (issue 21): datagrams per second and server CPU per datagram at
64 B, run by bench/run.py when `--only` names only these scenarios.

    python3 bench/run.py --only udp64,udp64x1
    python3 bench/run.py --only udp64 --servers echo-server,xinetd --passes 1 --duration 2

The load is `udp-load` (bench/peers): connected UDP sockets on 127.0.0.1,
each keeping a fixed number of 64-byte datagrams in flight, every echo
checked and answered with the next one; a socket that hears nothing for
200 ms counts its datagrams lost and sends a new window. Every client
socket has the same source address, so echo-server runs with its
per-source limits raised out of the way (`--udp-rate 10000000/s
--udp-bytes 16384M/s`): the table measures the echo path with the limiter's
check in it, not the limit. Server CPU is that of the server's whole
process group over the client's run (socat forks a process per datagram),
divided by the datagrams echoed in that run.

Servers: echo-server (`--udp`), `tokio-udp-echo` (bench/peers: one socket,
recv_from/send_to on a current_thread runtime), xinetd's internal
echo-dgram (a private config on a high port, `-dontfork`, its `cps`
limit raised: by default it stops a service for 10 s after 50 datagrams
in a second), and
`socat UDP-RECVFROM:P,fork PIPE`, which forks a process per datagram: a
reference for the inetd style of serving, not a peer in speed.
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
from catalog import CLIENT_CPU, LOCALHOST, SERVER_CPU
from modes import group_cpu_s, installed, only_names, parse_options, write_block

BEGIN, END = "<!-- BEGIN UDP GENERATED -->", "<!-- END UDP GENERATED -->"
READY_TIMEOUT = 10.0  # seconds for a server to answer its first datagram
NO_LIMITS = ["--udp-rate", "10000000/s", "--udp-bytes", "16384M/s"]


@dataclass(frozen=True)
class UdpServer:
    name: str
    label: str
    argv: Callable[[dict, int, Path], list[str]]
    tool: str | None = None
    forks: bool = False


def xinetd_argv(bins: dict, port: int, work: Path) -> list[str]:
    user = "\tuser = root\n" if os.geteuid() == 0 else ""
    conf = work / f"xinetd-echo-dgram-{port}.conf"
    conf.write_text(
        "defaults\n{\n}\n"
        "service echo\n{\n\ttype = INTERNAL UNLISTED\n\tid = echo-dgram\n\tsocket_type = dgram\n"
        f"\tprotocol = udp\n\twait = yes\n{user}\tbind = {LOCALHOST}\n\tport = {port}\n"
        # Its defaults would stop the service for 10 s after 50 datagrams
        # in a second (cps counts each datagram of a dgram service).
        "\tcps = 1000000 1\n\tinstances = UNLIMITED\n\tper_source = UNLIMITED\n}\n"
    )
    return ["xinetd", "-dontfork", "-f", str(conf), "-pidfile", str(work / f"xinetd-{port}.pid")]


SERVERS = [
    UdpServer("echo-server", "echo-server --udp",
              lambda b, p, w: [str(b["echo-server"]), "--port", str(p), "--bind", LOCALHOST, "--udp", *NO_LIMITS, "--busy-poll", "100"]),
    UdpServer("echo-server-sleep", "echo-server --udp --busy-poll 0",
              lambda b, p, w: [str(b["echo-server"]), "--port", str(p), "--bind", LOCALHOST, "--udp", *NO_LIMITS, "--busy-poll", "0"]),
    UdpServer("tokio-udp", "tokio current_thread (UDP)", lambda b, p, w: [str(b["tokio-udp-echo"]), "--port", str(p)]),
    UdpServer("xinetd", "xinetd echo-dgram (internal)", xinetd_argv, tool="xinetd"),
    UdpServer("socat", "socat UDP-RECVFROM,fork PIPE", lambda b, p, w: ["socat", f"UDP-RECVFROM:{p},fork,bind={LOCALHOST}", "PIPE"], tool="socat", forks=True),
]
SERVERS_BY_NAME = {s.name: s for s in SERVERS}


@dataclass(frozen=True)
class UdpScenario:
    name: str
    title: str
    args: list[str]  # udp-load flags besides duration and warmup


SCENARIOS = [
    UdpScenario("udp64", "UDP echo: 16 sockets x 4 datagrams of 64 B in flight", ["--sockets", "16", "--depth", "4", "--size", "64"]),
    UdpScenario("udp64x1", "UDP echo: 1 socket, 1 datagram of 64 B in flight (ping-pong)", ["--sockets", "1", "--depth", "1", "--size", "64"]),
]
SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}


def is_udp_run(argv: list[str]) -> bool:
    """Whether `--only` names only the scenarios of this file."""
    return only_names(argv, set(SCENARIOS_BY_NAME))


def parse(argv: list[str]) -> argparse.Namespace:
    return parse_options(argv, "bench/run.py (UDP echo)", "the UDP scenarios", SERVERS_BY_NAME, SCENARIOS_BY_NAME)


def wait_answering(proc: subprocess.Popen, port: int, log: str) -> None:
    """Sends a datagram until one comes back (a UDP server prints nothing
    when ready, and has no connect to poll with)."""
    deadline = time.monotonic() + READY_TIMEOUT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.1)
        s.connect((LOCALHOST, port))
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode} at start; see {log}")
            with contextlib.suppress(OSError):
                s.send(b"ready?")
                if s.recv(64) == b"ready?":
                    return
    raise RuntimeError(f"no UDP echo on port {port} after {READY_TIMEOUT:.0f} s; see {log}")


def free_udp_port() -> int:
    """A port free for both TCP and UDP (echo-server binds both)."""
    for _ in range(100):
        port = harness.free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            with contextlib.suppress(OSError):
                s.bind((LOCALHOST, port))
                return port
    raise RuntimeError("no port free for both TCP and UDP")


def one_run(env: harness.Env, bins: dict, a: argparse.Namespace, sc: UdpScenario, server: UdpServer, pass_no: int) -> dict:
    port = free_udp_port()
    run: dict = {"scenario": sc.name, "server": server.name, "pass": pass_no}
    log = (env.work / f"{sc.name}-{server.name}-{pass_no}.log").open("wb")
    proc = subprocess.Popen(env.pinned(SERVER_CPU, server.argv(bins, port, env.work)), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    error = None
    try:
        wait_answering(proc, port, log.name)
        if server.forks:
            harness.settle_forks(proc.pid, 1)
        cpu0 = group_cpu_s(proc.pid)
        argv = env.pinned(CLIENT_CPU, [str(bins["udp-load"]), "--target", f"{LOCALHOST}:{port}", *sc.args,
                                       "--duration", str(a.duration), "--warmup", str(a.warmup)])
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=a.duration + a.warmup + harness.CLIENT_SLACK)
        if server.forks:
            harness.settle_forks(proc.pid, 1)
        run["server_cpu_s"] = group_cpu_s(proc.pid) - cpu0
        if p.returncode != 0:
            error = f"udp-load exit {p.returncode}: {(p.stderr.strip().splitlines() or ['(no stderr)'])[-1]}"
        else:
            run["client"] = json.loads(p.stdout)
            if run["client"]["mismatched"]:
                error = f"{run['client']['mismatched']} echoes did not match"
    except (RuntimeError, OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        error = str(e)
    finally:
        harness.stop(proc)
        if server.forks:
            harness.settle_forks(proc.pid, 0)
        log.close()
    run["error"] = error
    print(f"   {describe(run)}", flush=True)
    return run


def figure(run: dict) -> dict:
    if run.get("error"):
        return {}
    doc = run["client"]
    total = doc["total_datagrams"]
    sent = total + doc["lost"]
    return {
        "datagrams_per_s": doc["datagrams_per_s"],
        "cpu_us_per_datagram": round(run["server_cpu_s"] * 1e6 / total, 2) if total else None,
        "loss_pct": round(100.0 * doc["lost"] / sent, 3) if sent else None,
    }


def describe(run: dict) -> str:
    where = f"{run['scenario']:<8} {run['server']:<18} pass {run['pass']}"
    if run.get("error"):
        return f"{where}  FAILED: {run['error']}"
    return f"{where}  " + "  ".join(f"{k} {v}" for k, v in figure(run).items())


def medians(runs: list[dict]) -> dict:
    figs = [figure(r) for r in runs if not r.get("error")]
    keys = {k for f in figs for k in f}
    return {k: statistics.median(v) for k in sorted(keys) if (v := [f[k] for f in figs if f.get(k) is not None])}


def markdown(a: argparse.Namespace, summary: dict, env: harness.Env) -> str:
    out = [f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: `{a.command}` "
           f"({a.passes} pass(es), {a.duration} s measured after {a.warmup} s). Pinning: {harness.pinning_note(env)}. "
           "Load: bench/peers `udp-load`; echo-server's per-source limits raised out of the way (one source address).", ""]
    for sc in a.scenario_list:
        rows = summary.get(sc.name, {})
        if not rows:
            continue
        out += [f"### {sc.title}", "", "| server | datagrams/s | server CPU µs per datagram | loss % |", "| --- | ---: | ---: | ---: |"]
        out += [f"| {SERVERS_BY_NAME[n].label} | {f.get('datagrams_per_s', '-')} | {f.get('cpu_us_per_datagram', '-')} | {f.get('loss_pct', '-')} |"
                for n, f in rows.items()]
        out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    a = parse(argv)
    servers = installed(a.server_list)
    if servers is None:
        return 1
    tools = {name: shutil.which(name) for name in ("taskset", "socat", "iperf3", "strace")}
    binaries = harness.build()
    peers = binaries.mio_echo.parent
    bins = {"echo-server": binaries.echo_server, "tokio-udp-echo": peers / "tokio-udp-echo", "udp-load": peers / "udp-load"}
    env = harness.Env(binaries=binaries, pin=harness.can_pin(tools), tools=tools, work=Path(tempfile.mkdtemp(prefix="echo-bench-udp-")))
    print(f"== Pinning: {harness.pinning_note(env)}\n== Server logs: {env.work}", flush=True)
    runs = []
    for pass_no in range(1, a.passes + 1):
        print(f"\n== Pass {pass_no}/{a.passes}", flush=True)
        for sc in a.scenario_list:
            for server in harness.rotated(servers, pass_no - 1):
                runs.append(one_run(env, bins, a, sc, server, pass_no))
    if not runs:
        print("\nNothing ran: no results written.")
        return 0
    summary = {sc.name: {s.name: m for s in servers if (m := medians([r for r in runs if r["scenario"] == sc.name and r["server"] == s.name]))} for sc in a.scenario_list}
    out_dir = Path(tempfile.mkdtemp(prefix="echo-bench-udp-out-")) if a.tiny else harness.BENCH / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "udp.json").write_text(json.dumps({"command": a.command, "summary": summary, "runs": runs}, indent=1) + "\n")
    md = out_dir / "BENCHMARKS.md" if a.tiny else harness.BENCHMARKS_MD
    write_block(md, BEGIN, END, "UDP echo (issue 21)", markdown(a, summary, env))
    print(f"\n== Wrote {out_dir / 'udp.json'} and {md}")
    failures = [r for r in runs if r.get("error")]
    for r in failures:
        print(f"FAIL: {r['scenario']} / {r['server']} / pass {r['pass']}: {r['error']}")
    return 1 if any(r["server"].startswith("echo-server") for r in failures) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
