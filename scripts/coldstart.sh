#!/usr/bin/env bash
# Cold start of one node on Redis with and without read-model snapshots
# (issue 16):
#   scripts/coldstart.sh [orders]            (default 1000000)
# Seeds that many orders straight into the journal (cmd/seed: OrderCreated
# events appended through the persistence API by 64 writers, encoded as the
# node encodes them, outbox checkpoints moved to the heads), starts a node
# that writes the read-model snapshots of every partition and times them,
# stops it, seeds a tail of COLDSTART_TAIL more orders (default 10000), then
# restarts the node COLDSTART_ROUNDS times each (default 2) with snapshots
# off (--read-model-snapshot-every 0: a full replay) and on, and times
# start-to-ready: from exec to GET /health/ready 200 with GET /stats
# totalOrders equal to every order seeded. Prints a markdown table.
#
# Loopback only. It starts its own redis-server (no persistence, data in a
# temporary directory) on a free port, never the Redis on 6379; the node
# listens on another free port. Everything it starts is stopped, and the
# temporary directory removed, on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

orders=${1:-1000000}
tail_orders=${COLDSTART_TAIL:-10000}
rounds=${COLDSTART_ROUNDS:-2}
every=${COLDSTART_EVERY:-20000}
[[ $orders =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [orders]   (a positive integer, default 1000000)" >&2; exit 2; }
[[ $tail_orders =~ ^[1-9][0-9]*$ ]] || { echo "COLDSTART_TAIL must be a positive integer, got '$tail_orders'" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "COLDSTART_ROUNDS must be a positive integer, got '$rounds'" >&2; exit 2; }
for c in redis-server redis-cli curl go awk python3; do
  command -v "$c" >/dev/null || { echo "$0: $c is required" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rport=$(free_port)
hport=$(free_port)
[ "$rport" != 6379 ] || rport=$(free_port)

tmp=$(mktemp -d)
redis_pid="" node_pid=""
cleanup() {
  local p
  for p in "$node_pid" "$redis_pid"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi
  done
  for p in "$node_pid" "$redis_pid"; do
    if [ -n "$p" ]; then wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

mkdir "$tmp/redis"
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$tmp/redis" --logfile "$tmp/redis/redis.log" >/dev/null 2>&1 &
redis_pid=$!
rcli() { redis-cli -h 127.0.0.1 -p "$rport" "$@"; }
for _ in $(seq 1 100); do
  rcli ping >/dev/null 2>&1 && break
  sleep 0.1
done
rcli ping >/dev/null

go build -o "$tmp/ordersystem" ./cmd/ordersystem
go build -o "$tmp/seed" ./cmd/seed

echo "seeding $orders orders into the private redis-server on port $rport" >&2
t=$(now)
"$tmp/seed" -persistence redis -redis "127.0.0.1:$rport" -orders "$orders" >&2
seed_time=$(since "$t")

# start_node every total: starts the node with --read-model-snapshot-every
# every, waits until it is ready and lists total orders, and sets took to
# the seconds that took (not in a subshell: node_pid must stay set).
took=""
start_node() {
  local snap_every=$1 total=$2 t
  t=$(now)
  "$tmp/ordersystem" --persistence redis --transport inmemory --redis "127.0.0.1:$rport" \
    --port "$hport" --http-host 127.0.0.1 --drain-delay 0 --log-format json \
    --read-model-snapshot-every "$snap_every" --read-model-snapshot-interval 1s >"$tmp/node.log" 2>&1 &
  node_pid=$!
  for _ in $(seq 1 12000); do
    if curl -sf "http://127.0.0.1:$hport/health/ready" >/dev/null 2>&1 &&
      [ "$(curl -sf "http://127.0.0.1:$hport/stats" | sed -n 's/.*"totalOrders":\([0-9]*\).*/\1/p')" = "$total" ]; then
      took=$(since "$t")
      return 0
    fi
    kill -0 "$node_pid" 2>/dev/null || { echo "the node exited:" >&2; tail -20 "$tmp/node.log" >&2; return 1; }
    sleep 0.02
  done
  echo "the node did not become ready with $total orders:" >&2; tail -20 "$tmp/node.log" >&2; return 1
}
stop_node() {
  kill -TERM "$node_pid"
  wait "$node_pid" || true
  node_pid=""
}
metric() { curl -sf "http://127.0.0.1:$hport/metrics" | awk -v m="$1" '$1 == m { printf "%d", $2 }'; }
rebuilt() { grep '"read model rebuilt"' "$tmp/node.log" | tail -1 | sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }

# The snapshots: a node whose first check (after 1 s) finds every partition
# Every records or more past no snapshot, and writes them one after another.
partitions=$(rcli hget ordersystem:meta partitions)
start_node "$every" "$orders"
first_ready=$took
echo "first start (no snapshots yet): ready in $first_ready s; writing the snapshots" >&2
t=$(now)
for _ in $(seq 1 36000); do
  [ "$(metric readmodel_snapshot_writes_total)" -ge "$partitions" ] && break
  [ "$(metric readmodel_snapshot_failures_total)" = 0 ] || { echo "a snapshot write failed:" >&2; grep -i snapshot "$tmp/node.log" | tail -5 >&2; exit 1; }
  sleep 0.1
done
snap_wall=$(since "$t")
snap_bytes=$(metric readmodel_snapshot_written_bytes_total)
snap_busy=$(curl -sf "http://127.0.0.1:$hport/metrics" | awk '$1 == "readmodel_snapshot_write_duration_seconds_sum" { printf "%.2f", $2 }')
stop_node

echo "seeding a tail of $tail_orders orders" >&2
"$tmp/seed" -persistence redis -redis "127.0.0.1:$rport" -orders "$tail_orders" >&2
total=$((orders + tail_orders))
redis_mem=$(rcli info memory | awk -F: '$1 == "used_memory" { printf "%.0f", $2 / 1048576 }')

rows=()
for r in $(seq 1 "$rounds"); do
  for mode in off on; do
    e=0
    [ "$mode" = on ] && e=$every
    start_node "$e" "$total"
    rows+=("| $total | $mode | $took s | $(rebuilt tail_records) | $(rebuilt rebuild_time) | $(rebuilt snapshot_partitions)/$partitions |")
    echo "round $r, snapshots $mode: ready in $took s" >&2
    stop_node
  done
done

echo
echo "Seeded $orders orders in $seed_time s, then a tail of $tail_orders; Redis used_memory $redis_mem MiB; $partitions partitions."
echo "Snapshots of every partition: $((snap_bytes / 1048576)) MiB, written in $snap_wall s wall ($snap_busy s summed over the partitions, paced at half a core), first start $first_ready s."
echo
echo "| orders | snapshots | start-to-ready | tail replayed (records) | read-model rebuild | partitions from a snapshot |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
