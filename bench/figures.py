"""The numbers of one run, their medians over the passes, and the targets of issues #3 and #18."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

from catalog import BASELINE, SERVERS_BY_NAME, Scenario, Server

# --------------------------------------------------------------------------
# Figures: what a run reports, and medians of the passes

LATENCY_KEYS = ("p50", "p90", "p99", "p999", "mean", "max")


def figures(run: dict, server: Server) -> dict[str, float | None]:
    """The numbers of one successful run, flattened; None where not measured."""
    c = run["client"]
    lat = c.get("latency_us") or {}
    srv = None if server.forks else c.get("server")
    f: dict[str, float | None] = {
        "msgs_per_s": c["msgs_per_s"],
        "mb_per_s": c["mb_per_s"],
        "connected": c.get("connected"),
        "connect_errors": c.get("connect_errors"),
        "closed_early": c.get("closed_early"),
        "server_threads": run.get("server_threads"),
    }
    tcp = run.get("kernel_tcp") or {}
    f["retrans_segs"] = tcp.get("retrans_segs")
    # 1 or 0 per run, so the summary can count the runs the kernel slowed.
    f["rcv_collapsed_run"] = None if "rcv_collapsed" not in tcp else int(tcp["rcv_collapsed"] > 0)
    segs = tcp.get("out_segs")
    f["delack_pct"] = 100 * tcp["delayed_acks"] / segs if segs and "delayed_acks" in tcp else None
    for k in LATENCY_KEYS + ("p95",):
        f[f"lat_{k}_us"] = lat.get(k)
    f["cpu_ns_per_msg"] = srv.get("cpu_ns_per_msg") if srv else None
    # Per MB (10^6 bytes) echoed: the unit of the streaming targets.
    f["cpu_us_per_mb"] = srv["cpu_s"] * 1e12 / c["bytes"] if srv and srv.get("cpu_s") is not None and c.get("bytes") else None
    f["rss_kib"] = srv.get("rss_kib") if srv else None
    f["peak_rss_kib"] = srv.get("peak_rss_kib") if srv else None
    before = run.get("rss_before_kib")
    if f["rss_kib"] is not None and before is not None and c.get("connected"):
        f["rss_per_conn_kib"] = (f["rss_kib"] - before) / c["connected"]
    else:
        f["rss_per_conn_kib"] = None
    return f


def median_figures(runs: list[dict]) -> dict[str, float | None]:
    """Median of each figure over the passes (each figure on its own)."""
    keys = runs[0].keys()
    out = {}
    for k in keys:
        values = [r[k] for r in runs if r[k] is not None]
        out[k] = statistics.median(values) if values else None
    return out


def summarize(scenarios: list[Scenario], servers: list[Server], runs: list[dict]) -> dict[str, dict[str, dict]]:
    """summary[scenario][server] = medians, for pairs with a successful run."""
    summary: dict[str, dict[str, dict]] = {}
    for scenario in scenarios:
        for server in servers:
            ok = [figures(r, server) for r in runs if r["scenario"] == scenario.name and r["server"] == server.name and not r["error"]]
            if ok:
                medians = median_figures(ok)
                medians["passes"] = len(ok)
                collapsed = [f["rcv_collapsed_run"] for f in ok if f["rcv_collapsed_run"] is not None]
                medians["rcv_collapsed_runs"] = sum(collapsed) if collapsed else None
                summary.setdefault(scenario.name, {})[server.name] = medians
    return summary


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def per_pass(runs: list[dict], scenario: Scenario | str, server: Server | str, key: str) -> dict[int, float]:
    """One figure of one (scenario, server) pair, by pass, where measured."""
    scenario_name = scenario if isinstance(scenario, str) else scenario.name
    server_name = server if isinstance(server, str) else server.name
    out = {}
    for r in runs:
        if r["scenario"] != scenario_name or r["server"] != server_name or r["error"]:
            continue
        value = figures(r, SERVERS_BY_NAME[server_name])[key]
        if value is not None:
            out[r["pass"]] = value
    return out


def pass_ratios(numerator: dict[int, float], denominator: dict[int, float]) -> list[float]:
    """Ratios of two figures taken in the same pass, so that the machine's
    drift between passes cancels out; sorted."""
    return sorted(numerator[p] / denominator[p] for p in numerator if denominator.get(p))


def spread(ratios: list[float]) -> str:
    """How far the per-pass ratios scatter, for the targets table."""
    if len(ratios) < 2:
        return ""
    return f"; per pass {ratios[0]:.2f}-{ratios[-1]:.2f}x"


# --------------------------------------------------------------------------
# Targets of issues #3 and #18


@dataclass
class Target:
    text: str
    status: str  # MET, MISSED, NOT MEASURED
    figures: str


def evaluate_targets(summary: dict, ceilings: dict, syscalls: dict, runs: list[dict]) -> list[Target]:
    def get(scenario: str, server: str, key: str) -> float | None:
        return summary.get(scenario, {}).get(server, {}).get(key)

    def judge(text: str, values: list[float | None], test: Callable[..., bool], shown: Callable[..., str]) -> Target:
        if any(v is None for v in values):
            return Target(text, "NOT MEASURED", "not measured in this run")
        return Target(text, "MET" if test(*values) else "MISSED", shown(*values))

    es, tc = "echo-server", BASELINE
    targets = [
        judge(
            "syscalls per echoed message at 50 x 64 B, depth 1: at most 2.2",
            [syscalls.get(es, {}).get("per_message")],
            lambda s: s <= 2.2,
            lambda s: f"{s:.3f} syscalls/msg",
        )
    ]
    for scen, conns in (("msg50", "50"), ("c1000", "1,000")):
        noise = spread(pass_ratios(per_pass(runs, scen, es, "cpu_ns_per_msg"), per_pass(runs, scen, tc, "cpu_ns_per_msg")))
        targets.append(judge(
            f"server CPU per message at {conns} x 64 B: at most 0.95x tokio current_thread, msgs/s at least its",
            [get(scen, es, "cpu_ns_per_msg"), get(scen, tc, "cpu_ns_per_msg"), get(scen, es, "msgs_per_s"), get(scen, tc, "msgs_per_s")],
            lambda c, ct, m, mt: c <= 0.95 * ct and m >= mt,
            lambda c, ct, m, mt: f"CPU {c:.0f} vs {ct:.0f} ns/msg ({c / ct:.2f}x{noise}); {m:,.0f} vs {mt:,.0f} msgs/s ({m / mt:.2f}x)",
        ))
    targets.append(judge(
        "bulk MB/s through 1 connection: at least 1.15x tokio current_thread and 0.75x iperf3",
        [get("bulk", es, "mb_per_s"), get("bulk", tc, "mb_per_s"), ceilings.get("iperf3_mb_per_s")],
        lambda m, mt, ip: m >= 1.15 * mt and m >= 0.75 * ip,
        lambda m, mt, ip: f"{m:,.0f} vs {mt:,.0f} MB/s ({m / mt:.2f}x); iperf3 {ip:,.0f} MB/s ({m / ip:.2f}x)",
    ))
    targets.append(judge(
        "p50 and p99 latency at 1 x 64 B: no worse than tokio current_thread",
        [get("lat", es, "lat_p50_us"), get("lat", tc, "lat_p50_us"), get("lat", es, "lat_p99_us"), get("lat", tc, "lat_p99_us")],
        lambda a, at, b, bt: a <= at and b <= bt,
        lambda a, at, b, bt: f"p50 {a:.1f} vs {at:.1f} us; p99 {b:.1f} vs {bt:.1f} us",
    ))
    targets.append(judge(
        "peak RSS with 1,000 busy connections: at most 0.35x tokio current_thread",
        [get("c1000", es, "peak_rss_kib"), get("c1000", tc, "peak_rss_kib")],
        lambda r, rt: r <= 0.35 * rt,
        lambda r, rt: f"{r:,.0f} vs {rt:,.0f} KiB ({r / rt:.2f}x)",
    ))
    targets.append(judge(
        "RSS added per connection at 10,000 connections: less than 2 KiB",
        [get("c10000", es, "rss_per_conn_kib")],
        lambda r: r < 2.0,
        lambda r: f"{r:.2f} KiB/connection",
    ))
    for server, path, cpu_max, mb_min in ((f"{es}-copy", "the copy path (--no-splice)", 1.0, 1.0), (es, "the default (zero-copy) path", 0.6, 1.2)):
        noise = spread(pass_ratios(per_pass(runs, "stream", server, "cpu_us_per_mb"), per_pass(runs, "stream", tc, "cpu_us_per_mb")))
        targets.append(judge(
            f"stream (a writer and a reader thread, nothing bounding the bytes in flight), {path}: "
            f"server CPU per MB at most {cpu_max:.1f}x tokio current_thread, MB/s at least {mb_min:.1f}x (issue #18)",
            [get("stream", server, "cpu_us_per_mb"), get("stream", tc, "cpu_us_per_mb"), get("stream", server, "mb_per_s"), get("stream", tc, "mb_per_s")],
            lambda c, ct, m, mt, cpu_max=cpu_max, mb_min=mb_min: c <= cpu_max * ct and m >= mb_min * mt,
            lambda c, ct, m, mt, noise=noise: f"CPU {c:.0f} vs {ct:.0f} us/MB ({c / ct:.2f}x{noise}); {m:,.0f} vs {mt:,.0f} MB/s ({m / mt:.2f}x)",
        ))
    scale_noise = spread(pass_ratios(per_pass(runs, "c10000", es, "cpu_ns_per_msg"), per_pass(runs, "msg50", es, "cpu_ns_per_msg")))
    targets.append(judge(
        "server CPU per message at 10,000 connections: within 1.25x of that at 50",
        [get("c10000", es, "cpu_ns_per_msg"), get("msg50", es, "cpu_ns_per_msg")],
        lambda big, small: big <= 1.25 * small,
        lambda big, small: f"{big:.0f} vs {small:.0f} ns/msg ({big / small:.2f}x{scale_noise})",
    ))
    return targets
