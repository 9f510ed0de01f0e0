#!/usr/bin/env bash
# Measures OrderSystem side by side in one run and writes BENCHMARKS.md.
#   scripts/bench.sh [seconds-per-scenario]   (default 8)
# LIMIT_ROUNDS (default 3) and BENCH_BEFORE_BIN: see scripts/limit.sh, which
# this runs for the "Near the limit" section.
# Loopback only. Needs Redis on 127.0.0.1:6379 and NATS (JetStream) on
# 127.0.0.1:4222 for the backend rows, and Redis for the 3-node cluster row
# (ports 5201-5203); they are skipped if absent.
# The node runs on CPU 1 and the load generator on CPU 0 (taskset), so that
# the generator does not steal the server's core; the three cluster nodes
# share CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
out=BENCHMARKS.md
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT
# BENCH_NODE_BIN / BENCH_LOADGEN_BIN: measure prebuilt binaries (say, an older
# commit's node for a before/after comparison) instead of this tree's.
if [ -n "${BENCH_NODE_BIN:-}" ]; then cp "$BENCH_NODE_BIN" "$bin/ordersystem"; else go build -o "$bin/ordersystem" ./cmd/ordersystem; fi
if [ -n "${BENCH_LOADGEN_BIN:-}" ]; then cp "$BENCH_LOADGEN_BIN" "$bin/loadgen"; else go build -o "$bin/loadgen" ./cmd/loadgen; fi

pin_server="taskset -c 1"; pin_load="taskset -c 0"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || { pin_server=""; pin_load=""; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_node() { # port args...
  local port=$1; shift
  $pin_server "$bin/ordersystem" --port "$port" --http-host 127.0.0.1 --log-level warn "$@" >"$bin/node-$port.log" 2>&1 &
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && return 0
    sleep 0.1
  done
  echo "node on $port did not become ready:" >&2; cat "$bin/node-$port.log" >&2; return 1
}
stop_nodes() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; }

loadgen() { $pin_load "$bin/loadgen" -duration "${secs}s" -concurrency 32 "$@"; }
tput_of() { sed -n "s/^$1 .*throughput=\([0-9.]*\).*/\1/p"; }

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); echo "$1: $2 / $3 = $4 (aim $5)"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# 1-2: in-memory node, create and read vs live.
start_node 5101
r=$(loadgen -targets http://127.0.0.1:5101 -compare live,create,read)
echo "$r"
live=$(echo "$r" | tput_of live); create=$(echo "$r" | tput_of create); read_=$(echo "$r" | tput_of read)
row "POST /orders vs GET /health/live (in memory)" "$create/s" "$live/s" "$(ratio "$create" "$live")" ">= 0.5"
row "GET /orders/{id} vs GET /health/live (in memory)" "$read_/s" "$live/s" "$(ratio "$read_" "$live")" ">= 0.7"
stop_nodes

# Informational: the same create load with Go's default garbage collector
# setting (GOGC=100) instead of the node's (GOGC=200, internal/gcdefaults).
GOGC=100 start_node 5103
c=$(loadgen -targets http://127.0.0.1:5103 -scenario create | tput_of create)
row "POST /orders with the node's GOGC=200 vs Go's default GOGC=100 (in memory)" "$create/s" "$c/s" "$(ratio "$create" "$c")" "(informational)"
stop_nodes

# 3: create on Redis and NATS persistence vs in memory.
for be in redis nats; do
  port=4222; [ "$be" = redis ] && port=6379
  if answers $port; then
    # Redis: database 9, emptied before and after, so the run neither sees
    # nor leaves other data.
    [ "$be" = redis ] && redis-cli -n 9 flushdb >/dev/null
    start_node 5102 --persistence "$be" --transport "$be" --redis redis://127.0.0.1:6379/9
    c=$(loadgen -targets http://127.0.0.1:5102 -scenario create | tput_of create)
    row "POST /orders on $be vs in memory" "$c/s" "$create/s" "$(ratio "$c" "$create")" ">= 0.5"
    stop_nodes
    [ "$be" = redis ] && redis-cli -n 9 flushdb >/dev/null
  fi
done

# 4: journal appends vs the raw server (Go benchmarks, 32 writers), and
#    redis-benchmark SET as the raw Redis figure.
metric() { sed -n "s|^Benchmark$1[^ ]* .* \([0-9.]*\) $2/s.*|\1|p" | head -1; }
if answers 6379; then
  b=$(go test -run x -bench 'Append|RawSet' -benchtime 3s ./persistence/redis 2>/dev/null | grep -E '^Benchmark' || true)
  echo "$b"
  app=$(echo "$b" | metric Append/Standalone/GroupCommit appends); set=$(echo "$b" | metric RawSet sets)
  rb=$(redis-benchmark -t set -c 32 -n 200000 -q 2>/dev/null | sed -n 's/.*SET: \([0-9.]*\) requests.*/\1/p')
  row "Redis journal appends, 32 writers vs go-redis SET" "$app/s" "$set/s" "$(ratio "$app" "$set")" ">= 0.5"
  [ -n "$rb" ] && row "Redis journal appends vs redis-benchmark -t set -c 32" "$app/s" "$rb/s" "$(ratio "$app" "$rb")" ">= 0.5"
fi
if answers 4222; then
  b=$(go test -run x -bench 'Append|RawPublish' -benchtime 3s ./persistence/nats 2>/dev/null | grep -E '^Benchmark' || true)
  echo "$b"
  app=$(echo "$b" | metric Append/Cache appends); pub=$(echo "$b" | metric RawPublish publishes)
  row "NATS journal appends, 32 writers vs JetStream publish loop" "$app/s" "$pub/s" "$(ratio "$app" "$pub")" ">= 0.5"
fi

# 5: reads through a non-owner node vs through the owner, 3-node cluster on
#    Redis (database 9, emptied before and after). loadgen learns each node's
#    id from GET / and each order's owner from X-Order-Owner in its warm-up;
#    -route owner sends every read to the owner, -route other to the next
#    node, which forwards it. All three nodes share CPU 1.
members_of() { curl -sf "http://127.0.0.1:$1/" | grep -o '"id":"' | wc -l; }
cluster_fail() { # message
  echo "$1" >&2
  for p in 5201 5202 5203; do echo "--- node on $p:" >&2; tail -n 20 "$bin/node-$p.log" >&2; done
  stop_nodes; redis-cli -n 9 flushdb >/dev/null; exit 1
}
if answers 6379; then
  redis-cli -n 9 flushdb >/dev/null
  for i in 1 2 3; do
    start_node 520$i --cluster --node-id node$i --persistence redis --transport redis --redis redis://127.0.0.1:6379/9 ||
      cluster_fail "cluster node node$i did not start"
  done
  for p in 5201 5202 5203; do
    n=0
    for _ in $(seq 1 150); do
      n=$(members_of $p || true)
      [ "${n:-0}" -ge 3 ] && break
      sleep 0.1
    done
    [ "${n:-0}" -ge 3 ] || cluster_fail "node on $p lists ${n:-0} cluster members after 15 s, want 3"
  done
  targets=http://127.0.0.1:5201,http://127.0.0.1:5202,http://127.0.0.1:5203
  r=$(loadgen -targets "$targets" -scenario read -route owner) || cluster_fail "loadgen -route owner failed: $r"
  echo "$r"
  own=$(echo "$r" | tput_of read)
  r=$(loadgen -targets "$targets" -scenario read -route other) || cluster_fail "loadgen -route other failed: $r"
  echo "$r"
  oth=$(echo "$r" | tput_of read)
  row "GET /orders/{id} through a non-owner vs the owner (3 nodes, redis)" "$oth/s" "$own/s" "$(ratio "$oth" "$own")" ">= 0.6"
  stop_nodes
  redis-cli -n 9 flushdb >/dev/null
fi

# 6: the node next to its limit, a bare echo + map server with the same
#    routes (scripts/limit.sh: CPU per request from /proc and throughput,
#    LIMIT_ROUNDS interleaved rounds, default 3; BENCH_BEFORE_BIN adds an
#    older node binary as a "before" column).
limit_md="$bin/limit.md"
BENCH_NODE_BIN="$bin/ordersystem" LIMIT_OUT="$limit_md" scripts/limit.sh "$secs" "${LIMIT_ROUNDS:-3}"

# The table replaces the top of BENCHMARKS.md, the "## Near the limit"
# section is replaced by this run's; the other "## " sections after it
# (scale, Go benchmarks, before/after) are kept.
kept=""
[ -f "$out" ] && kept=$(awk '/^## /{keep=1; skip=($0 ~ /^## Near the limit: the order path/)} keep && !skip' "$out")
{
  echo "# Benchmarks"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), Go $(go env GOVERSION), loopback."
  echo "Produced by \`scripts/bench.sh $secs\`: node pinned to CPU 1 (the three cluster nodes share it), load generator to CPU 0, 32 closed-loop workers, ${secs} s per scenario."
  echo
  echo "| Figure | Measured | Reference | Ratio | Aim |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "## Near the limit: the order path next to bare echo + map"
  echo
  echo "How far the in-memory node is from what the same API costs with nothing behind it: \`cmd/limitserver\` serves the same routes on bare echo with encoding/json and a mutex-guarded map (no actor, no journal, no outbox, no read model), measured in this run."
  echo
  cat "$limit_md"
  [ -z "$kept" ] || printf '\n%s\n' "$kept"
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out"
