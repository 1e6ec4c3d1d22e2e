#!/usr/bin/env python3
"""Hammers the metrics endpoint: N keep-alive clients GET a path in a loop
for a fixed time, then print how many requests were answered.

    python3 monitoring/scrape_hammer.py 127.0.0.1:9187 --path /metrics \
        --clients 4 --seconds 10 [--rate 100]

Used for the README's "what scraping costs the echo path" measurement: run
it beside `echo-client bench` and compare with a bench run without it.
"""
import argparse
import http.client
import threading
import time


def worker(host, port, path, deadline, counts, i, interval):
    conn = http.client.HTTPConnection(host, port, timeout=5)
    n = 0
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        if interval:
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise SystemExit(f"status {resp.status}")
        n += 1
    counts[i] = n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("addr")
    p.add_argument("--path", default="/metrics")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rate", type=float, default=0, help="requests/s per client; 0: flat out")
    a = p.parse_args()
    host, port = a.addr.rsplit(":", 1)
    deadline = time.monotonic() + a.seconds
    counts = [0] * a.clients
    threads = [
        threading.Thread(target=worker, args=(host, int(port), a.path, deadline, counts, i,
                                        1 / a.rate if a.rate else 0))
        for i in range(a.clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(counts)
    print(f"{total} requests for {a.path} in {a.seconds:.0f} s ({total / a.seconds:.0f}/s)")


if __name__ == "__main__":
    main()
