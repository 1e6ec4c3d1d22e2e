"""What bench/run.py compares: the servers, the scenarios, the reference figures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

LOCALHOST = "127.0.0.1"
SERVER_CPU, CLIENT_CPU = 0, 1  # taskset CPUs
BASELINE = "tokio-current"  # ratios are against this server

# The Python echo seed's published figures for its own scenario
# (1 connection, 16 KB messages x 1000), measured on an Apple M2.
SEED_PUBLISHED = {"avg_rtt_ms": 0.089, "p95_rtt_ms": 0.122, "mb_per_s": 172.61}


@dataclass(frozen=True)
class Binaries:
    echo_server: Path
    echo_client: Path
    tokio_echo: Path
    mio_echo: Path
    syscall_floor: Path


@dataclass(frozen=True)
class Server:
    name: str  # key for --servers and in results
    label: str  # name in tables and graphs
    argv: Callable[[Binaries, int], list[str]]
    tool: str | None = None  # external program it needs
    # A server that forks a process per connection: the client's --server-pid
    # figures cover only the listening parent, so CPU and memory are not shown.
    forks: bool = False


# Every server is pinned to one CPU (SERVER_CPU), which `--busy-poll auto`
# (the default) takes for a host with one usable CPU, and so it would not
# poll; the benchmark's CPU is the server's alone, as a host's CPUs are for
# a server started without taskset, so echo-server gets the window auto
# picks there, spelled out.
DEDICATED_CPU = ["--busy-poll", "100"]

SERVERS = [
    Server(
        "echo-server",
        "echo-server",
        lambda b, p: [str(b.echo_server), "--port", str(p), "--bind", LOCALHOST, *DEDICATED_CPU],
    ),
    # The same server with its zero-copy path off, so the tables show what
    # splice(2) is worth (bulk) and that it leaves small messages alone.
    Server(
        "echo-server-copy",
        "echo-server --no-splice",
        lambda b, p: [str(b.echo_server), "--port", str(p), "--bind", LOCALHOST, "--no-splice", *DEDICATED_CPU],
    ),
    # The same server sleeping in every wait, as the peers do, so the tables
    # show what polling while traffic is dense buys (latency) and costs (CPU).
    Server(
        "echo-server-sleep",
        "echo-server --busy-poll 0",
        lambda b, p: [str(b.echo_server), "--port", str(p), "--bind", LOCALHOST, "--busy-poll", "0"],
    ),
    Server(
        "tokio-current",
        "tokio current_thread",
        lambda b, p: [str(b.tokio_echo), "--runtime", "current", "--port", str(p)],
    ),
    Server(
        "tokio-multi",
        "tokio multi-thread",
        lambda b, p: [str(b.tokio_echo), "--runtime", "multi", "--port", str(p)],
    ),
    Server(
        "mio-echo",
        "plain mio loop",
        lambda b, p: [str(b.mio_echo), "--port", str(p)],
    ),
    # Two options beyond the plain command, for the same fairness as the
    # others: backlog=1024 (socat's default is 5, so 1,000 connects would
    # measure SYN retries) and nodelay (else Nagle holds back the second
    # half of a 16 KiB echo until a delayed ACK, 40 ms later).
    Server(
        "socat",
        "socat fork PIPE",
        lambda b, p: ["socat", f"TCP-LISTEN:{p},fork,reuseaddr,bind={LOCALHOST},backlog=1024,nodelay", "PIPE"],
        tool="socat",
        forks=True,
    ),
]
SERVERS_BY_NAME = {s.name: s for s in SERVERS}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    short: str  # a graph panel's subtitle
    connections: int
    size: str  # as echo-client takes it: bytes, or with a K suffix
    depth: int = 1
    bulk: bool = False
    in_flight: str | None = None  # bulk: echo-client's --in-flight (bytes, or unbounded); None: its default (auto)
    requests: int | None = None  # a fixed message count instead of --duration
    warmup: float | None = None  # None: the run's --warmup
    tiny_connections: int | None = None  # fewer connections under --tiny
    # > 1: each pass interleaves the servers in this many short slices
    # (slices.py), so that the machine's drift falls on all of them alike.
    slices: int = 1

    def client_args(self, duration: float, warmup: float, tiny: bool) -> list[str]:
        """echo-client bench flags; `duration` and `warmup` are the run's."""
        conns = self.tiny_connections if tiny and self.tiny_connections else self.connections
        args = ["--connections", str(conns), "--size", self.size]
        if self.bulk:
            args.append("--bulk")
            if self.in_flight is not None:
                args += ["--in-flight", self.in_flight]
        else:
            args += ["--depth", str(self.depth)]
        if self.requests is not None:
            args += ["--requests", str(self.requests)]
        else:
            args += ["--duration", str(duration)]
        return args + ["--warmup", str(self.warmup_s(warmup))]

    def warmup_s(self, warmup: float) -> float:
        return self.warmup if self.warmup is not None else warmup

    def seconds(self, duration: float, warmup: float) -> float:
        """How long the client should run, connection set-up aside."""
        return self.warmup_s(warmup) + (0 if self.requests else duration)


# Slices per pass of the scenarios measured at a steady rate (not bulk, whose
# streams need seconds to settle; not 10,000 connections, whose set-up would
# be repeated per slice; not the seed's fixed count).
SLICES = 5

SCENARIOS = [
    Scenario("lat", "1 connection x 64 B, depth 1 (latency)", "1 conn x 64 B", 1, "64", slices=SLICES),
    Scenario("msg50", "50 connections x 64 B, depth 1 (messages/s)", "50 conns x 64 B", 50, "64", slices=SLICES),
    Scenario("d4", "50 connections x 4 KiB, depth 4", "50 conns x 4 KiB, depth 4", 50, "4K", depth=4, slices=SLICES),
    Scenario("bulk", "1 connection, bulk 64 KiB writes (MB/s)", "1 conn, 64 KiB writes", 1, "64K", bulk=True),
    # The same stream with less and with (almost) no bound on the bytes in
    # flight: how the comparison depends on it (BENCHMARKS.md, "bulk").
    Scenario("bulk256k", "1 connection, bulk 64 KiB writes, at most 256 KiB in flight", "1 conn, 256 KiB in flight", 1, "64K", bulk=True, in_flight="256K"),
    Scenario("bulk1g", "1 connection, bulk 64 KiB writes, up to 1 GiB in flight (no bound in practice)", "1 conn, 1 GiB in flight", 1, "64K", bulk=True, in_flight="1024M"),
    # A client shaped like `nc host port < big > out` or socat: a writer
    # thread that never waits for the echo, a reader thread that checks it.
    Scenario("stream", "1 connection, 64 KiB writes from a writer thread, the echo read by a reader thread (nc, socat)", "1 conn, writer + reader threads", 1, "64K", bulk=True, in_flight="unbounded"),
    Scenario("c1000", "1,000 connections x 64 B (scale)", "1,000 conns x 64 B", 1000, "64", slices=SLICES),
    Scenario("c10000", "10,000 connections x 64 B (scale)", "10,000 conns x 64 B", 10000, "64", tiny_connections=200),
    Scenario("seed", "the Python seed's scenario: 1 connection, 16 KiB x 1000", "1 conn, 16 KiB x 1000", 1, "16K", requests=1000, warmup=0),
]
SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}

# The TLS scenarios (issue 20), run by bench/tls.py against the TLS peer
# (tokio-rustls-echo): `--only tls_lat,...` runs them on their own.
@dataclass(frozen=True)
class TlsScenario:
    scenario: Scenario
    extra: tuple[str, ...] = ()  # echo-client flags beyond the Scenario's

    @property
    def name(self) -> str:
        return self.scenario.name


TLS_SCENARIOS = [
    TlsScenario(Scenario("tls_lat", "TLS: 1 connection x 64 B, depth 1 (latency)", "1 conn x 64 B", 1, "64")),
    TlsScenario(Scenario("tls_msg50", "TLS: 50 connections x 64 B, depth 1 (messages/s)", "50 conns x 64 B", 50, "64")),
    TlsScenario(Scenario("tls_bulk", "TLS: 1 connection, bulk 64 KiB writes (MB/s)", "1 conn, 64 KiB writes", 1, "64K", bulk=True)),
    # Mostly idle: 1,000 open TLS connections, 100 messages a second among
    # them, so the server's RSS per connection is that of an idle one.
    TlsScenario(
        Scenario("tls_idle", "TLS: 1,000 connections, 100 msgs/s in all (RSS per idle connection)", "1,000 idle conns", 1000, "64", tiny_connections=100),
        ("--rate", "100"),
    ),
]

# Where syscalls per message are counted (issue #3: 50 x 64 B, depth 1).
STRACE_ARGS = ["--connections", "50", "--size", "64", "--depth", "1", "--warmup", "0"]


@dataclass
class Options:
    """Run-wide settings, from the command line."""

    tiny: bool
    passes: int
    duration: float
    warmup: float
    scenarios: list[Scenario]
    servers: list[Server]
    strace_requests: int
    floor_count: int
    iperf_seconds: int
    out_dir: Path  # results JSON and graphs
    markdown: Path  # the file whose generated block is rewritten
    command: str

    def slices(self, scenario: Scenario) -> int:
        """A scenario's slices per pass; two at most under --tiny, which
        still runs the interleaving but has no time to divide."""
        return min(scenario.slices, 2) if self.tiny else scenario.slices
