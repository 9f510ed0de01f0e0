#!/usr/bin/env bash
# Creates per second served while slow-body clients hold connections, against
# the same node without them, interleaved (this machine is shared and drifts):
#   scripts/slowbody.sh [slow-clients] [rounds] [seconds]   (default 1000, 3, 5)
# Each round runs `loadgen -scenario create` for the given seconds without
# slow clients, then with them (`-slow-clients N`: each sends the headers of
# a POST /orders and one body byte per second). The node runs with its
# defaults (--read-timeout 30s, --max-connections 4096, --max-in-flight
# 4096) on CPU 1, the generator on CPU 0.
set -euo pipefail
cd "$(dirname "$0")/.."
slow=${1:-1000} rounds=${2:-3} secs=${3:-5}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/ordersystem" ./cmd/ordersystem
go build -o "$tmp/loadgen" ./cmd/loadgen
pin_server="taskset -c 1"; pin_load="taskset -c 0"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || { pin_server=""; pin_load=""; }
ulimit -n 65536 2>/dev/null || true
port=5430
$pin_server "$tmp/ordersystem" --port "$port" --http-host 127.0.0.1 --log-level warn >"$tmp/node.log" 2>&1 &
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
for r in $(seq 1 "$rounds"); do
  for mode in without with; do
    extra=""; [ "$mode" = with ] && extra="-slow-clients $slow"
    # shellcheck disable=SC2086
    $pin_load "$tmp/loadgen" -targets "http://127.0.0.1:$port" -scenario create -concurrency 32 -duration "${secs}s" $extra >"$tmp/out" || true
    tput=$(sed -n 's/^create .*throughput=\([0-9.]*\).*/\1/p' "$tmp/out")
    slowline=$(grep '^slow clients' "$tmp/out" || true)
    echo "round $r $mode: creates/s=$tput ${slowline}"
    echo "$mode $tput" >>"$tmp/results"
  done
done
for mode in without with; do
  m=$(awk -v m="$mode" '$1 == m { print $2 }' "$tmp/results" | sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
  echo "median creates/s $mode $slow slow clients: $m"
done
grep -c ERROR "$tmp/node.log" | sed 's/^/node ERROR lines: /' || true
