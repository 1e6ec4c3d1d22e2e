"""What bench/run.py prints and writes: console lines and BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

from catalog import BASELINE, SEED_PUBLISHED, SERVERS_BY_NAME, Options, Scenario
from figures import Target, figures, ratio

BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"

# --------------------------------------------------------------------------
# Console lines


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def fmt(v: float | None, digits: int = 0, unit: str = "") -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}{unit}"


def describe_run(run: dict, scenario: Scenario) -> str:
    server = SERVERS_BY_NAME[run["server"]]
    f = figures(run, server)
    head = f"   {scenario.name:<7} {server.name:<14} pass {run['pass']}:"
    if scenario.bulk:
        perf = f"{fmt(f['mb_per_s'], 1)} MB/s, kernel retransmits {fmt(f['retrans_segs'])}"
        if f["rcv_collapsed_run"]:
            perf += " (a receive queue collapsed)"
    else:
        perf = f"{fmt(f['msgs_per_s'])} msgs/s, p50 {fmt(f['lat_p50_us'], 1)} us, p99 {fmt(f['lat_p99_us'], 1)} us"
    extra = f"CPU {fmt(f['cpu_ns_per_msg'])} ns/msg"
    if scenario.bulk:
        extra += f" ({fmt(f['cpu_us_per_mb'])} us/MB)"
    extra += f", peak RSS {fmt(f['peak_rss_kib'])} KiB"
    warn = ""
    conns = run["client"].get("connections")
    if f["connected"] is not None and conns and f["connected"] < conns:
        warn = f"  WARN: only {f['connected']:.0f}/{conns} connected"
    for key in ("closed_early", "connect_errors", "incomplete"):
        if run["client"].get(key):
            warn += f"  WARN: {key} {run['client'][key]}"
    return f"{head} {perf}; {extra}{warn}"


def print_targets(targets: list[Target], tiny: bool) -> None:
    print("\n== Targets (issues #3 and #18)" + (" -- tiny run: the figures mean nothing" if tiny else ""))
    for t in targets:
        print(f"   {t.status:<12} {t.text}\n                {t.figures}")


# --------------------------------------------------------------------------
# BENCHMARKS.md


METHOD = """\
# Benchmarks

How echo-server compares with what a user would otherwise pick, measured by
one script: `python3 bench/run.py` (see [bench/README.md](bench/README.md)).

## Method

- **Servers.** echo-server at its defaults (`--port P --bind 127.0.0.1`,
  default log level, log to a file; `--busy-poll 100` spelled out, the
  window `auto` picks on this 2-CPU host: pinned to one CPU for the
  measurement, `auto` would see one usable CPU and not poll), once more with `--no-splice`
  (its zero-copy path for streaming clients off) and once with
  `--busy-poll 0` (sleeping in every wait for events, as the peers do);
  an idiomatic tokio echo server
  (a task per connection, each owning a 64 KiB buffer) on the
  `current_thread` runtime and on the multi-thread runtime; a minimal
  plain-mio loop with a fixed 64 KiB buffer per connection and no features;
  `socat TCP-LISTEN:P,fork,reuseaddr PIPE`. All set TCP_NODELAY (socat
  aside). The peers live in `bench/peers`, built with the same release
  profile as echo-server.
- **Load.** `echo-client bench`, which verifies every echoed byte. The
  servers are pinned to CPU 0 and the client to CPU 1 with `taskset`.
  Every scenario is run with all servers in turn, in the same script run,
  the order rotated each pass; each figure is the median of the passes.
  The bulk, 10,000-connection and seed scenarios start a fresh server
  process per run. The steady-rate ones (latency, 50 connections, depth 4,
  1,000 connections) are *sliced*: each pass starts every server, then
  runs the client against each in turn for a fifth of the duration (and of
  the warm-up), five rounds, each round starting one server further on.
  This VM's cost of waking a CPU drifts from one few-second window to the
  next, which moved a whole-block p99 by more than the servers differ;
  slices put every server in the same windows. A sliced run's rates and
  CPU per message are its summed messages over its summed time, its
  latency percentiles the median of the five slices' (`bench/slices.py`).
- **Server cost.** CPU per echoed message is the server's utime+stime over
  the measured window divided by the messages echoed in it; RSS and peak
  RSS (VmHWM) come from `/proc/PID/status`; RSS per connection is the RSS
  at the end of the window, less the idle server's RSS just before the
  client started, divided by the connections. Syscalls per message come
  from `strace -c -f` attached for a fixed count of messages.
- **Ceilings.** `iperf3` over loopback (one direction) bounds bulk
  throughput; `syscall-floor` times a write+read on each side of a
  loopback TCP pair in one thread, the kernel's cost of one echo with no
  server at all.
"""


def markdown_block(opts: Options, results: dict) -> str:
    """The generated part of BENCHMARKS.md: machine, command, tables, graphs."""
    m, s = results["machine"], results["summary"]
    out = [
        "## Machine and command of this run",
        "",
        f"- CPU: {m['cpu']}, {m['nproc']} CPUs (nproc), {m['memory_gib']} GiB memory",
        f"- Kernel: {m['kernel']}, TCP congestion control {m.get('tcp_congestion_control') or 'unknown'} (the system default, used by every server, the client and iperf3); {m['rustc']}",
        f"- Tools: {m['socat'] or 'socat missing'}; {m['iperf3'] or 'iperf3 missing'}; {m['strace'] or 'strace missing'}",
        f"- Date (UTC): {results['date']}",
        f"- Command: `{opts.command}` ({plural(opts.passes, 'pass', 'passes')}, {opts.duration} s measured after {opts.warmup} s warm-up per run)",
        f"- Pinning: {results['pinning']}",
        f"- Threads per server process, counted in /proc at start: {threads_line(s)}",
        "",
        "In the scenario tables, ratios (x) are against tokio current_thread; for CPU, latency and RSS lower is better. "
        "socat forks a process per connection and the client measures only the listening parent, "
        "so socat's CPU and memory are n/a. Latencies are in microseconds, RSS in KiB.",
        "",
    ]
    out += ceilings_section(results)
    out += syscalls_section(results, opts)
    for scenario in opts.scenarios:
        if scenario.name in s:
            out += scenario_section(scenario, s[scenario.name], results, opts)
    out += seed_section(s.get("seed", {}), opts)
    out += ["## Targets (issues #3 and #18)", "", "| target | figures | status |", "| --- | --- | --- |"]
    out += [f"| {t['text']} | {t['figures']} | **{t['status']}** |" for t in results["targets"]]
    out += ["", "## Graphs", "", "![Latency percentiles per server](bench/graphs/latency.svg)", "",
            "![Throughput per scenario and server](bench/graphs/throughput.svg)", ""]
    return "\n".join(out)


def threads_line(summary: dict) -> str:
    """Each server's thread count (the most seen in any scenario), to show
    what the pinning left the multi-thread runtime."""
    counts: dict[str, list[float]] = {}
    for rows in summary.values():
        for name, f in rows.items():
            if f.get("server_threads") is not None:
                counts.setdefault(name, []).append(f["server_threads"])
    return ", ".join(f"{SERVERS_BY_NAME[n].label} {max(v):.0f}" for n, v in counts.items()) or "n/a"


def ceilings_section(results: dict) -> list[str]:
    c = results["ceilings"]
    return [
        "## Ceilings",
        "",
        "| ceiling | figure |",
        "| --- | --- |",
        f"| iperf3, one direction over loopback | {fmt(c.get('iperf3_mb_per_s'))} MB/s |",
        f"| syscall floor: one 64 B round trip (2 writes + 2 reads, one thread) | {fmt(c.get('floor_round_trip_ns'))} ns |",
        f"| syscall floor: the server's share, one read + one write | {fmt(c.get('floor_server_ns'))} ns |",
        "",
    ]


def syscalls_section(results: dict, opts: Options) -> list[str]:
    sc = results["syscalls"]
    if not sc:
        return []
    out = [
        f"## Syscalls per echoed message (strace -c -f, 50 x 64 B, depth 1, {opts.strace_requests:,} messages)",
        "",
        "| server | per message | total calls | top calls, per message |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, r in sc.items():
        top = sorted(r["by_syscall"].items(), key=lambda kv: -kv[1])[:4]
        tops = ", ".join(f"{k} {v / r['messages']:.3f}" for k, v in top)
        out.append(f"| {SERVERS_BY_NAME[name].label} | {r['per_message']:.3f} | {r['calls']:,} | {tops} |")
    return out + [""]


def scenario_section(scenario: Scenario, rows: dict, results: dict, opts: Options) -> list[str]:
    base = rows.get(BASELINE, {})
    out = [f"## {scenario.name}: {scenario.title}", ""]
    if scenario.bulk:
        iperf = results["ceilings"].get("iperf3_mb_per_s")
        out += ["| server | MB/s | x tokio current_thread | x iperf3 | server CPU ns/64 KiB msg | server CPU us/MB | x CPU/MB | peak RSS KiB | kernel retransmits per run | runs with a collapsed receive queue |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, f in rows.items():
            collapsed = f.get("rcv_collapsed_runs")
            collapsed_text = "n/a" if collapsed is None else f"{collapsed:.0f} of {f['passes']:.0f}"
            out.append(
                f"| {SERVERS_BY_NAME[name].label} | {fmt(f['mb_per_s'], 1)} | {fmt(ratio(f['mb_per_s'], base.get('mb_per_s')), 2)} "
                f"| {fmt(ratio(f['mb_per_s'], iperf), 2)} | {fmt(f['cpu_ns_per_msg'])} | {fmt(f.get('cpu_us_per_mb'))} "
                f"| {fmt(ratio(f.get('cpu_us_per_mb'), base.get('cpu_us_per_mb')), 2)} | {fmt(f['peak_rss_kib'])} "
                f"| {fmt(f.get('retrans_segs'))} | {collapsed_text} |"
            )
        if scenario.name != "bulk":
            return out + ["", "Kernel counters as for `bulk`.", ""]
        out += ["", "Kernel counters are system-wide deltas over each client run (/proc/net/snmp `RetransSegs`, /proc/net/netstat "
                "`TCPRcvCollapsed`); nothing is lost on loopback's wire, so a retransmission follows either reordering (segments sent from both CPUs "
                "overtake each other; DSACKs then show the resend was spurious) or a segment dropped by a full receive queue, "
                "and a collapse means the kernel pruned and re-copied a receive queue that outgrew its buffer. "
                f"iperf3's own runs: {fmt(results['ceilings'].get('iperf3_retrans_segs'))} retransmits per run (median).", ""]
        return out
    per_conn = scenario.name == "c10000"
    head = "| server | msgs/s | MB/s | p50 us | p99 us | p99.9 us | CPU ns/msg | peak RSS KiB |"
    head += " RSS/conn KiB |" if per_conn else ""
    head += " delayed-ACK timer segments % |"
    head += " x msgs/s | x CPU/msg | x p99 | x peak RSS |"
    out += [head, "|" + " --- |" + " ---: |" * (head.count("|") - 2)]
    for name, f in rows.items():
        line = (
            f"| {SERVERS_BY_NAME[name].label} | {fmt(f['msgs_per_s'])} | {fmt(f['mb_per_s'], 2)} | {fmt(f['lat_p50_us'], 1)} "
            f"| {fmt(f['lat_p99_us'], 1)} | {fmt(f['lat_p999_us'], 1)} | {fmt(f['cpu_ns_per_msg'])} | {fmt(f['peak_rss_kib'])} |"
        )
        if per_conn:
            line += f" {fmt(f['rss_per_conn_kib'], 2)} |"
        line += f" {fmt(f.get('delack_pct'), 1)} |"
        line += "".join(
            f" {fmt(ratio(f[k], base.get(k)), 2)} |" for k in ("msgs_per_s", "cpu_ns_per_msg", "lat_p99_us", "peak_rss_kib")
        )
        out.append(line)
    return out + [""]


def seed_section(rows: dict, opts: Options) -> list[str]:
    if not rows:
        return []
    pub = SEED_PUBLISHED
    out = [
        "## The Python seed's scenario, side by side",
        "",
        "1 connection, 16 KiB messages x 1000, no warm-up. The seed's figures are its published ones (Apple M2); ours are from this machine.",
        "",
        "| server | avg RTT ms | p95 RTT ms | p99 RTT ms | MB/s |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| Python seed, published (Apple M2) | {pub['avg_rtt_ms']} | {pub['p95_rtt_ms']} | n/a | {pub['mb_per_s']} |",
    ]
    ms = lambda us: None if us is None else us / 1000  # noqa: E731
    for name, f in rows.items():
        out.append(
            f"| {SERVERS_BY_NAME[name].label} | {fmt(ms(f['lat_mean_us']), 3)} | {fmt(ms(f['lat_p95_us']), 3)} "
            f"| {fmt(ms(f['lat_p99_us']), 3)} | {fmt(f['mb_per_s'], 2)} |"
        )
    return out + [""]


def write_markdown(path: Path, block: str) -> None:
    """Replaces the generated block, creating the file with the method
    section around it if needed; text outside the markers is kept."""
    generated = f"{BEGIN}\n{block}\n{END}"
    if not path.exists():
        path.write_text(METHOD + "\n" + generated + "\n")
        return
    text = path.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        path.write_text(head + generated + tail)
    else:
        path.write_text(text.rstrip("\n") + "\n\n" + generated + "\n")
