"""The kernel's TCP counters around one run, and the congestion control.

Loopback bulk figures on a 2-CPU VM swing by a factor of several from run
to run, and the cause is in the kernel, not in the servers: segments sent
from both CPUs overtake each other (reordering, then spurious
retransmissions), and a receive queue that outgrows its buffer is pruned
and its segments re-copied ("collapsed"). Recording those counters per run
lets the report say which runs the kernel slowed, instead of leaving an
outlier unexplained; likewise the delayed-ACK timers that fire when each
of 10,000 connections waits longer than the timeout. The counters are system-wide; during a run only the
benchmark's own connections carry traffic on this machine.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

# (file, row prefix, counter, name in the results)
COUNTERS = (
    ("/proc/net/snmp", "Tcp:", "RetransSegs", "retrans_segs"),
    ("/proc/net/netstat", "TcpExt:", "TCPOFOQueue", "ofo_queued"),
    ("/proc/net/netstat", "TcpExt:", "PruneCalled", "prune_called"),
    ("/proc/net/netstat", "TcpExt:", "TCPRcvCollapsed", "rcv_collapsed"),
    # Pure ACKs sent because a delayed-ACK timer fired (no reply carried the
    # ACK in time), against all segments sent: what makes 10,000 slow
    # connections cost more per message than 50 fast ones.
    ("/proc/net/netstat", "TcpExt:", "DelayedACKs", "delayed_acks"),
    ("/proc/net/snmp", "Tcp:", "OutSegs", "out_segs"),
)


def read_table(path: str, prefix: str) -> dict[str, int]:
    """One `Prefix: names...` / `Prefix: values...` pair of lines of a
    /proc/net file as a dict; empty if the file cannot be read."""
    with contextlib.suppress(OSError):
        rows = [line.split() for line in Path(path).read_text().splitlines() if line.startswith(prefix)]
        if len(rows) >= 2:
            names, values = rows[0][1:], rows[1][1:]
            return {n: int(v) for n, v in zip(names, values) if v.lstrip("-").isdigit()}
    return {}


def snapshot() -> dict[str, int]:
    tables: dict[tuple[str, str], dict[str, int]] = {}
    out = {}
    for path, prefix, counter, name in COUNTERS:
        table = tables.setdefault((path, prefix), read_table(path, prefix))
        if counter in table:
            out[name] = table[counter]
    return out


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What each counter gained over the run (only those read both times)."""
    return {k: after[k] - before[k] for k in before if k in after}


def congestion_control() -> str | None:
    """The system default (`net.ipv4.tcp_congestion_control`), which every
    server, the client and iperf3 use here."""
    with contextlib.suppress(OSError):
        return Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip() or None
    return None
