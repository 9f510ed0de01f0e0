#!/usr/bin/env bash
# What a node's memory does under a steady stream of new orders: one node on
# Redis (persistence and transport, database 9, emptied before and after)
# with a soft memory limit, POST /orders as fast as 32 workers go for the
# given seconds, the node's order_actors_active, live heap and RSS sampled
# every 5 s:
#   scripts/crowded.sh [seconds] [memory-limit]   (default 40, 400MiB)
# Every active order actor keeps a few kilobytes until it passivates
# (--idle-timeout, 2 minutes); once the live heap passes half the limit the
# node's actors passivate 5 s after their last message (internal/memwatch).
# BENCH_BEFORE_BIN: run this node binary too (an older build, e.g. one
# without the watch), after the tree's, for comparison. The node runs on CPU
# 1 with GOMAXPROCS=1, the load generator on CPU 0. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-40}; limit=${2:-400MiB}
[[ $secs =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [seconds] [memory-limit]" >&2; exit 2; }
redis-cli -p 6379 ping >/dev/null 2>&1 || { echo "$0: no Redis on 127.0.0.1:6379" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"; redis-cli -n 9 flushdb >/dev/null 2>&1 || true' EXIT
go build -o "$tmp/node" ./cmd/ordersystem
go build -o "$tmp/loadgen" ./cmd/loadgen
bins="node"
if [ -n "${BENCH_BEFORE_BIN:-}" ]; then cp "$BENCH_BEFORE_BIN" "$tmp/before"; bins="node before"; fi
pin_server="taskset -c 1"; pin_load="taskset -c 0"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || { pin_server=""; pin_load=""; }
port=5490
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m { printf "%.0f", $2 }'; }
for b in $bins; do
  port=$((port + 1))
  redis-cli -n 9 flushdb >/dev/null
  GOMEMLIMIT=$limit GOMAXPROCS=1 $pin_server "$tmp/$b" --port "$port" --http-host 127.0.0.1 --log-level warn \
    --persistence redis --transport redis --redis redis://127.0.0.1:6379/9 >"$tmp/$b.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
  $pin_load "$tmp/loadgen" -targets "http://127.0.0.1:$port" -scenario create -duration "${secs}s" -concurrency 32 -pool 1000 >"$tmp/load.out" &
  load=$!
  peak=0
  for t in $(seq 5 5 "$secs"); do
    sleep 5
    rss=$(awk '/VmRSS/ { print $2 * 1024 }' "/proc/$pid/status")
    [ "$rss" -gt "$peak" ] && peak=$rss
    echo "$b t=${t}s actors=$(metric order_actors_active) heap_inuse=$(($(metric go_memstats_heap_inuse_bytes) / 1048576))MiB rss=$((rss / 1048576))MiB"
  done
  wait "$load"
  echo "$b: $(sed -n 's/^create \(requests=[0-9]*\) .*\(throughput=[0-9.]*\/s\).* \(p99=[0-9.]*ms\).*/\1 \2 \3/p' "$tmp/load.out") peak_rss=$((peak / 1048576))MiB"
  grep -i "memory" "$tmp/$b.log" | head -3 || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
