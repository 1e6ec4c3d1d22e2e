#!/usr/bin/env bash
# User-space instructions per echoed message, at 50 connections x 64 B:
# the server runs under callgrind twice, loaded with 20,000 and then 60,000
# messages; the difference of the two totals over the 40,000 extra messages
# leaves start-up and shutdown out. Busy polling is off (--busy-poll 0):
# under valgrind's slow clock its spinning would make the count depend on
# timing. Usage: bench/callgrind.sh [SERVER_BIN [CLIENT_BIN]]
set -euo pipefail
server=${1:-target/release/echo-server}
client=${2:-target/release/echo-client}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

total_for() {
  local n=$1 port pid
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$n" \
    "$server" --bind 127.0.0.1 --port "$port" -q --busy-poll 0 >/dev/null 2>"$out/vg.$n" &
  pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  "$client" bench "127.0.0.1:$port" -c 50 -n "$n" --size 64 >/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^summary:/ {print $2}' "$out/cg.$n"
}

a=$(total_for 20000)
b=$(total_for 60000)
python3 -c "print(f'Ir {$a} (20,000 msgs), {$b} (60,000 msgs): {($b - $a) / 40000:.1f} per message')"
