#!/usr/bin/env bash
# Outbox lag under load: one node on a private Redis (journal and
# transport, 16 partitions), its create capacity measured closed-loop, then
# an open-loop create load at 80% of it while /stats is sampled every 100 ms;
# prints the lag's p50, p99 and max (events journaled, not yet published).
#   scripts/outbox-lag.sh [seconds] [fraction]     (default 10 s, 0.8)
# The figures in /stats are the cluster's, read from the backend at most
# once a second, so a sample is at most about a second old.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
frac=${2:-0.8}
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/ordersystem" ./cmd/ordersystem
go build -o "$tmp/loadgen" ./cmd/loadgen
pin_server="taskset -c 1"; pin_load="taskset -c 0"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || { pin_server=""; pin_load=""; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

rp=$(free_port); hp=$(free_port)
redis-server --port "$rp" --bind 127.0.0.1 --dir "$tmp" --save "" --appendonly no --protected-mode no >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do redis-cli -p "$rp" ping >/dev/null 2>&1 && break; sleep 0.1; done
$pin_server "$tmp/ordersystem" --port "$hp" --http-host 127.0.0.1 --log-level warn --drain-delay 0 \
  --persistence redis --transport redis --redis "127.0.0.1:$rp" >"$tmp/node.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$hp/health/ready" >/dev/null && break; sleep 0.1; done
url="http://127.0.0.1:$hp"

cap=$($pin_load "$tmp/loadgen" -targets "$url" -scenario create -duration 5s -concurrency 32 | sed -n 's/^create .*throughput=\([0-9.]*\).*/\1/p')
rate=$(awk -v c="$cap" -v f="$frac" 'BEGIN { printf "%.0f", c * f }')
echo "create capacity ${cap}/s (closed loop, 32 workers); open loop at ${rate}/s for ${secs}s"

( end=$((SECONDS + secs)); while [ $SECONDS -lt $end ]; do
    curl -sf "$url/stats" | sed -n 's/.*"outbox":{"lag":\([0-9]*\).*/\1/p'
    sleep 0.1
  done ) >"$tmp/lag" &
sampler=$!
$pin_load "$tmp/loadgen" -targets "$url" -scenario create -rate "$rate" -concurrency 256 -duration "${secs}s" | grep -E '^create'
wait "$sampler"
sort -n "$tmp/lag" | awk '{ v[NR] = $1 } END {
  if (NR == 0) { print "no samples"; exit 1 }
  p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1]
  printf "outbox lag over %d samples: p50 %d, p99 %d, max %d events\n", NR, p50, p99, v[NR] }'
