"""One (scenario, server, pass) figure from several interleaved slices.

A 2-CPU VM drifts: the cost of waking a CPU, and so a server's latency
tail and its CPU per message, changes from one few-second window to the
next. Run each server for one block of `--duration` seconds after the
other, and the comparison measures the windows as much as the servers.
A sliced scenario keeps every server up for the whole pass and runs the
client against each in turn, in short slices, round after round, so each
server sees the same windows. This module merges one server's slices into
the single run document the report expects.
"""

from __future__ import annotations

import statistics
from typing import Any

# Summed over the slices: counts of things that happened.
COUNTS = ("messages", "bytes", "connect_errors", "mismatches", "closed_early", "incomplete")


def merge_client(docs: list[dict]) -> dict[str, Any]:
    """echo-client's JSON documents of one server's slices, as one.

    Rates come from the summed counts over the summed measured time, and CPU
    per message from the summed CPU time, so a slice weighs by what it
    measured. A latency percentile is the median of the slices' percentiles:
    a robust figure without the raw histograms (`max` is the largest)."""
    if not docs:
        raise ValueError("no slice to merge")
    out = dict(docs[0])
    for key in COUNTS:
        out[key] = sum(d.get(key) or 0 for d in docs)
    elapsed = sum(d["elapsed_s"] for d in docs)
    out["elapsed_s"] = elapsed
    out["msgs_per_s"] = out["messages"] / elapsed if elapsed else 0
    out["mb_per_s"] = out["bytes"] / elapsed / 1e6 if elapsed else 0
    out["connected"] = min(d.get("connected") or 0 for d in docs)
    out["interrupted"] = any(d.get("interrupted") for d in docs)
    out["slices"] = len(docs)

    latencies = [d["latency_us"] for d in docs if d.get("latency_us")]
    if latencies:
        merged = {k: statistics.median(lat[k] for lat in latencies) for k in latencies[0] if k != "max"}
        merged["max"] = max(lat["max"] for lat in latencies)
        out["latency_us"] = merged

    servers = [d["server"] for d in docs if d.get("server")]
    if servers and len(servers) == len(docs):
        cpu_s = sum(s["cpu_s"] for s in servers)
        out["server"] = {
            "pid": servers[0]["pid"],
            "cpu_s": cpu_s,
            "cpu_ns_per_msg": cpu_s * 1e9 / out["messages"] if out["messages"] else None,
            # The server stays up across the slices: its RSS as the last
            # slice ended, and the high-water mark of them all.
            "rss_kib": servers[-1]["rss_kib"],
            "peak_rss_kib": max(s["peak_rss_kib"] for s in servers),
        }
    else:
        out["server"] = None
    return out


def merge_counters(deltas: list[dict[str, int]]) -> dict[str, int]:
    """The kernel's TCP counter deltas of the slices, summed (only counters
    every slice read)."""
    if not deltas:
        return {}
    keys = set(deltas[0]).intersection(*deltas[1:])
    return {k: sum(d[k] for d in deltas) for k in sorted(keys)}
