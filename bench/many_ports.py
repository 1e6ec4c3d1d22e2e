#!/usr/bin/env python3
"""Listening on many ports (issue 21): start-up time, resident memory, and
the cost of one message on one port, for a server on 1 port and on 1,000.

    python3 bench/many_ports.py                 # 1 and 1000 ports, 5 s each
    python3 bench/many_ports.py --ports 1,100,1000 --duration 3

Builds nothing: run `cargo build --release` first. Uses loopback ports
BASE..BASE+N-1 (--base, default 20000, below the ephemeral range); a port in use ends that run with
the server's own error. Prints one Markdown table row per port count.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, "target", "release", "echo-server")
CLIENT = os.path.join(ROOT, "target", "release", "echo-client")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run(count, base, duration):
    ports = f"{base}" if count == 1 else f"{base}-{base + count - 1}"
    began = time.monotonic()
    server = subprocess.Popen(
        [SERVER, "--bind", "127.0.0.1", "--port", ports, "--max-connections", "1000", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in server.stdout:
            if line.startswith("Listening on "):
                break
        else:
            sys.exit(f"{count} ports: the server did not start: {server.stderr.read().strip()}")
        started_ms = (time.monotonic() - began) * 1e3
        rss = rss_kib(server.pid)
        cpu_before = cpu_seconds(server.pid)
        bench = subprocess.run(
            [CLIENT, "bench", f"127.0.0.1:{base + count - 1}", "--json",
             "--duration", str(duration), "--warmup", "0"],
            capture_output=True, text=True, check=True,
        )
        cpu = cpu_seconds(server.pid) - cpu_before
        result = json.loads(bench.stdout)
        messages = result["messages"]
        return {
            "ports": count,
            "startup_ms": started_ms,
            "rss_kib": rss,
            "msgs_per_s": result["msgs_per_s"],
            "p50_us": result["latency_us"]["p50"],
            "server_cpu_us_per_msg": cpu / messages * 1e6 if messages else float("nan"),
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", default="1,1000", help="port counts, comma-separated")
    parser.add_argument("--base", type=int, default=20000, help="first port")
    parser.add_argument("--duration", type=float, default=5, help="seconds of load per run")
    args = parser.parse_args()
    print("| ports | start-up (ms, to the banner) | RSS (KiB) | msgs/s, 1 connection, 64 B | p50 (µs) | server CPU per message (µs) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count in (int(n) for n in args.ports.split(",")):
        r = run(count, args.base, args.duration)
        print(f"| {r['ports']} | {r['startup_ms']:.1f} | {r['rss_kib']} | {r['msgs_per_s']:.0f} "
              f"| {r['p50_us']:.1f} | {r['server_cpu_us_per_msg']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
