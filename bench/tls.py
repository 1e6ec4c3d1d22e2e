"""The TLS scenarios (issue 20), run by bench/run.py when `--only` names
only these, and at tiny size at the end of `--tiny`: echo-server with
`--tls-cert/--tls-key` against tokio-rustls-echo (bench/peers: tokio's
current_thread runtime, rustls 0.23 with the ring provider and its default
suites, as echo-server), every connection a TLS one (`echo-client bench
--tls`, the certificate pinned by its SHA-256).

    python3 bench/run.py --only tls_lat,tls_msg50,tls_bulk,tls_idle
    python3 bench/run.py --only tls_lat --servers tokio-rustls --passes 1 --duration 1

The certificate and key (EC P-256, for 127.0.0.1) are made at the start
with `openssl req` in the run's work directory. An echo-server whose
`--help` has no `--tls-cert` (before the server side of issue 20) is left
out with a `SKIP:` line; under `--tiny` the TLS rows are then skipped
entirely.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import modes
import run as harness
from catalog import DEDICATED_CPU, LOCALHOST, TLS_SCENARIOS, Server, TlsScenario
from figures import figures, summarize
from report import fmt

BEGIN, END = "<!-- BEGIN TLS GENERATED -->", "<!-- END TLS GENERATED -->"
PEER = "tokio-rustls"  # the server the ratios are against


SCENARIOS = TLS_SCENARIOS
SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}


def server_list(cert: Path, key: Path, peer: Path) -> list[Server]:
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    return [
        Server("echo-server", "echo-server --tls-cert", lambda b, p: [str(b.echo_server), "--port", str(p), "--bind", LOCALHOST, *tls, *DEDICATED_CPU]),
        Server(PEER, "tokio-rustls current_thread", lambda b, p: [str(peer), "--port", str(p), "--bind", LOCALHOST, "--cert", str(cert), "--key", str(key)]),
    ]


SERVER_NAMES = ["echo-server", PEER]


def is_tls_run(argv: list[str]) -> bool:
    """Whether `--only` names only the scenarios of this file."""
    return modes.only_names(argv, set(SCENARIOS_BY_NAME))


def parse(argv: list[str]) -> argparse.Namespace:
    a = modes.parse_options(argv, "bench/run.py (TLS scenarios)", "the TLS scenarios", {n: n for n in SERVER_NAMES}, SCENARIOS_BY_NAME, passes=5)
    a.server_names = a.server_list
    return a


def supports_tls(echo_server: Path) -> bool:
    p = subprocess.run([str(echo_server), "--help"], capture_output=True, text=True, timeout=30)
    return "--tls-cert" in p.stdout


def make_certificate(work: Path) -> tuple[Path, Path, str]:
    """A self-signed EC certificate for 127.0.0.1 and its key; the
    certificate's SHA-256, which the client pins."""
    cert, key = work / "tls-cert.pem", work / "tls-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-addext", "basicConstraints=critical,CA:FALSE"],
        check=True, capture_output=True, timeout=60,
    )
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return cert, key, hashlib.sha256(der).hexdigest()


def one_run(env: harness.Env, a: argparse.Namespace, sc: TlsScenario, server: Server, pin: str, pass_no: int) -> dict:
    port = harness.free_port()
    run: dict = {"scenario": sc.name, "server": server.name, "pass": pass_no}
    error = None
    try:
        with harness.running_server(env, server, port, f"{sc.name}-{server.name}-{pass_no}") as proc:
            run["rss_before_kib"] = harness.read_kib(f"/proc/{proc.pid}/status", "VmRSS")
            args = sc.scenario.client_args(a.duration, a.warmup, a.tiny) + list(sc.extra)
            args += ["--tls", "--tls-fingerprint", pin, "--server-pid", str(proc.pid)]
            timeout = sc.scenario.seconds(a.duration, a.warmup) + harness.CLIENT_SLACK
            run["client"], error = harness.run_client(env, port, args, timeout)
    except RuntimeError as e:
        error = str(e)
    run["error"] = error
    where = f"{sc.name} / {server.name} / pass {pass_no}"
    if error and server.name != "echo-server":
        env.peer_fail(f"{where}: {error}")
    elif error:
        env.fail(f"{where}: {error}")
    else:
        print(describe(sc, server, run), flush=True)
    return run


def describe(sc: TlsScenario, server: Server, run: dict) -> str:
    f = figures(run, server)
    head = f"   {sc.name:<9} {server.name:<12} pass {run['pass']}:"
    if sc.scenario.bulk:
        perf = f"{fmt(f['mb_per_s'], 1)} MB/s, CPU {fmt(f['cpu_us_per_mb'])} us/MB"
    else:
        perf = f"{fmt(f['msgs_per_s'])} msgs/s, p50 {fmt(f['lat_p50_us'], 1)} us, p99 {fmt(f['lat_p99_us'], 1)} us, CPU {fmt(f['cpu_ns_per_msg'])} ns/msg"
    return f"{head} {perf}; RSS {fmt(f['rss_kib'])} KiB ({fmt(f['rss_per_conn_kib'], 1)} KiB per connection)"


def ratio(a, b):
    return a / b if a is not None and b else None


def targets(summary: dict) -> list[tuple[str, float | None, str, bool | None]]:
    """(what, echo-server / peer, the bound, met) for issue 20's targets."""
    out = []

    def add(what: str, scenario: str, key: str, at_least: bool) -> None:
        pair = summary.get(scenario, {})
        r = ratio((pair.get("echo-server") or {}).get(key), (pair.get(PEER) or {}).get(key))
        bound = ">= 1.0x" if at_least else "<= 1.0x"
        out.append((what, r, bound, None if r is None else (r >= 1.0 if at_least else r <= 1.0)))

    add("MB/s, bulk", "tls_bulk", "mb_per_s", True)
    add("server CPU per MB, bulk", "tls_bulk", "cpu_us_per_mb", False)
    add("server CPU per message, 50 x 64 B", "tls_msg50", "cpu_ns_per_msg", False)
    add("p99, 1 x 64 B", "tls_lat", "lat_p99_us", False)
    add("RSS per idle TLS connection", "tls_idle", "rss_per_conn_kib", False)
    return out


def markdown(a: argparse.Namespace, summary: dict, servers: list[Server]) -> str:
    lines = [f"Command: `{a.command}`; {a.passes} pass(es), median shown; every connection TLS 1.3 (the client's default), certificate pinned.", ""]
    lines += ["| scenario | server | msgs/s | MB/s | p50 us | p99 us | CPU ns/msg | CPU us/MB | RSS KiB per conn |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for sc in a.scenario_list:
        for server in servers:
            m = summary.get(sc.name, {}).get(server.name)
            if not m:
                continue
            lines.append(
                f"| {sc.scenario.title} | {server.label} | {fmt(m['msgs_per_s'])} | {fmt(m['mb_per_s'], 1)} | {fmt(m['lat_p50_us'], 1)} | "
                f"{fmt(m['lat_p99_us'], 1)} | {fmt(m['cpu_ns_per_msg'])} | {fmt(m['cpu_us_per_mb'])} | {fmt(m['rss_per_conn_kib'], 1)} |"
            )
    lines += ["", "| target (echo-server / tokio-rustls) | ratio | bound | met |", "| --- | ---: | --- | --- |"]
    for what, r, bound, met in targets(summary):
        lines.append(f"| {what} | {fmt(r, 2)} | {bound} | {'-' if met is None else 'yes' if met else 'NO'} |")
    return "\n".join(lines)


def run_scenarios(env: harness.Env, a: argparse.Namespace) -> int:
    """Every pass of the chosen scenarios; writes the results; 1 if an
    echo-server run failed."""
    if shutil.which("openssl") is None:
        if os.environ.get("ECHO_SERVER_REQUIRE_TOOLS") == "1":
            print("error: ECHO_SERVER_REQUIRE_TOOLS=1 and not installed: openssl")
            return 1
        print("SKIP: openssl not installed: no certificate for the TLS scenarios (Debian: apt-get install openssl)")
        return 0
    cert, key, pin = make_certificate(env.work)
    peer = env.binaries.tokio_echo.parent / "tokio-rustls-echo"
    servers = [s for s in server_list(cert, key, peer) if s.name in a.server_names]
    if any(s.name == "echo-server" for s in servers) and not supports_tls(env.binaries.echo_server):
        print("SKIP: echo-server: its --help has no --tls-cert (the server side of issue 20 is not in this build); left out")
        servers = [s for s in servers if s.name != "echo-server"]
    harness.raise_open_file_limit(max(s.scenario.connections for s in a.scenario_list) + 1024)
    runs = []
    for pass_no in range(1, a.passes + 1):
        print(f"\n== TLS pass {pass_no}/{a.passes}", flush=True)
        for sc in a.scenario_list:
            for server in harness.rotated(servers, pass_no - 1):
                runs.append(one_run(env, a, sc, server, pin, pass_no))
    if not runs:
        print("\nNothing ran: no TLS results written.")
        return 0
    summary = summarize(a.scenario_list, servers, runs)
    for what, r, bound, met in targets(summary):
        print(f"   target {what}: {fmt(r, 2)} ({bound}) {'-' if met is None else 'met' if met else 'MISSED'}")
    out_dir = Path(tempfile.mkdtemp(prefix="echo-bench-tls-out-")) if a.tiny else harness.BENCH / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tls.json").write_text(json.dumps({"command": a.command, "summary": summary, "runs": runs}, indent=1) + "\n")
    md = out_dir / "BENCHMARKS.md" if a.tiny else harness.BENCHMARKS_MD
    modes.write_block(md, BEGIN, END, "TLS (issue 20)", markdown(a, summary, servers))
    print(f"\n== Wrote {out_dir / 'tls.json'} and {md}")
    return 1 if any(r["error"] and r["server"] == "echo-server" for r in runs) else 0


def tiny_rows(env: harness.Env) -> None:
    """`--tiny`'s TLS rows: only when this echo-server serves TLS (the
    rows compare it with the peer); failures go to `env` like the rest."""
    if not supports_tls(env.binaries.echo_server):
        print("\nSKIP: TLS rows: echo-server's --help has no --tls-cert (the server side of issue 20 is not in this build)")
        return
    a = parse(["--only", ",".join(SCENARIOS_BY_NAME), "--tiny"])
    run_scenarios(env, a)


def main(argv: list[str]) -> int:
    a = parse(argv)
    tools = {name: shutil.which(name) for name in ("taskset", "socat", "iperf3", "strace")}
    env = harness.Env(binaries=harness.build(), pin=harness.can_pin(tools), tools=tools, work=Path(tempfile.mkdtemp(prefix="echo-bench-tls-")))
    print(f"== Pinning: {harness.pinning_note(env)}\n== Server logs: {env.work}", flush=True)
    code = run_scenarios(env, a)
    if code == 0 and not env.failures:
        shutil.rmtree(env.work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
