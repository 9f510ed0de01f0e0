#!/usr/bin/env bash
# Memory and scale of one node on Redis persistence (issue 7):
#   scripts/scale.sh [orders]            (default 1000000)
# Creates that many orders through the HTTP API with the load generator, then
# reports creation throughput, the node's RSS and Go heap right after creation
# and again once the order actors have passivated, the heap and Redis memory
# per order, and the start-to-ready time of a restart that rebuilds the read
# model from that journal. Prints a markdown section and puts it in
# BENCHMARKS.md under "## Scale" (replacing an earlier one, keeping the rest).
#
# Loopback only. It starts its own redis-server (no persistence, data in a
# temporary directory) on SCALE_REDIS_PORT (default 6391) and never touches
# the Redis on 6379; the node listens on 127.0.0.1:SCALE_HTTP_PORT (default
# 5301). Everything it starts is stopped on exit.
#
# SCALE_IDLE_TIMEOUT: the node's --idle-timeout in seconds (default 120, the
# node's default 2m): how long an order actor stays active without messages.
# The wait for passivation (order_actors_active near 0) is bounded by it plus
# 60 s. After that the script waits until the node is idle (below 10 % of a
# core over 5 s), at most SCALE_QUIET_MAX seconds (default 3600): stopped
# activations are unregistered after the gauge drops (protoactor's disthash
# lookup took O(n) per stop here; cluster/placement.go takes O(1)).
#
# The node runs on CPU 1 and the load generator on CPU 0 (taskset), as in
# scripts/bench.sh; redis-server is not pinned.
set -euo pipefail
cd "$(dirname "$0")/.."

orders=${1:-1000000}
idle=${SCALE_IDLE_TIMEOUT:-120}
quiet_max=${SCALE_QUIET_MAX:-3600}
rport=${SCALE_REDIS_PORT:-6391}
hport=${SCALE_HTTP_PORT:-5301}
out=BENCHMARKS.md
[[ $orders =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [orders]   (a positive integer, default 1000000)" >&2; exit 2; }
[[ $idle =~ ^[1-9][0-9]*$ ]] || { echo "SCALE_IDLE_TIMEOUT must be a whole number of seconds, got '$idle'" >&2; exit 2; }
[[ $quiet_max =~ ^[0-9]+$ ]] || { echo "SCALE_QUIET_MAX must be a whole number of seconds, got '$quiet_max'" >&2; exit 2; }
[ "$rport" != 6379 ] || { echo "SCALE_REDIS_PORT must not be 6379: this script uses a private redis-server" >&2; exit 2; }
for c in redis-server redis-cli curl go awk; do
  command -v "$c" >/dev/null || { echo "$0: $c is required" >&2; exit 1; }
done

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if answers "$rport"; then
  echo "port $rport is taken: stop what listens there or set SCALE_REDIS_PORT to a free port" >&2; exit 1
fi
if answers "$hport"; then
  echo "port $hport is taken: stop what listens there or set SCALE_HTTP_PORT to a free port" >&2; exit 1
fi

tmp=$(mktemp -d)
redis_pid="" node_pid="" gen_pid=""
cleanup() {
  local p
  for p in "$gen_pid" "$node_pid" "$redis_pid"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi
  done
  for p in "$gen_pid" "$node_pid" "$redis_pid"; do
    if [ -n "$p" ]; then wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

script_start=$(date +%s.%N)
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

pin_server=(taskset -c 1); pin_load=(taskset -c 0)
if ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; then pin_server=(); pin_load=(); fi

# Private Redis: no RDB, no AOF, working directory in $tmp.
mkdir "$tmp/redis"
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$tmp/redis" --logfile "$tmp/redis/redis.log" >/dev/null 2>&1 &
redis_pid=$!
rcli() { redis-cli -h 127.0.0.1 -p "$rport" "$@"; }
for _ in $(seq 1 100); do
  rcli ping >/dev/null 2>&1 && break
  sleep 0.1
done
rcli ping >/dev/null 2>&1 || { echo "private redis-server on $rport did not start:" >&2; cat "$tmp/redis/redis.log" >&2; exit 1; }
redis_url="redis://127.0.0.1:$rport/0"

echo "building ordersystem and loadgen..."
go build -o "$tmp/ordersystem" ./cmd/ordersystem
go build -o "$tmp/loadgen" ./cmd/loadgen

base="http://127.0.0.1:$hport"
node_args=(--port "$hport" --http-host 127.0.0.1 --log-level warn --persistence redis --transport redis
  --redis "$redis_url" --idle-timeout "${idle}s")

start_node() {
  "${pin_server[@]}" "$tmp/ordersystem" "${node_args[@]}" >>"$tmp/node.log" 2>&1 &
  node_pid=$!
}
# stop_node: SIGTERM and wait for the exit (the node bounds its graceful
# shutdown by --shutdown-timeout, 30 s); SIGKILL after 90 s.
stop_node() {
  local t0 i; t0=$(now)
  killed=""
  kill -TERM "$node_pid"
  for ((i = 0; i < 900; i++)); do
    kill -0 "$node_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$node_pid" 2>/dev/null; then
    echo "warning: the node did not exit within 90 s of SIGTERM; killing it" >&2
    kill -KILL "$node_pid"; killed=" (did not exit: SIGKILL after 90 s)"
  fi
  wait "$node_pid" || true
  node_pid=""
  stop_secs=$(since "$t0")
}
node_alive() { kill -0 "$node_pid" 2>/dev/null; }
ready() { curl -sf --max-time 2 -o /dev/null "$base/health/ready"; }
total_orders() { curl -sf --max-time 10 "$base/stats" | sed -n 's/.*"totalOrders":\([0-9]*\).*/\1/p'; }
metric() { curl -sf --max-time 10 "$base/metrics" | awk -v m="$1" '$1 == m { printf "%.0f", $2; found = 1 } END { if (!found) print "" }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$node_pid/status"; }
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$node_pid/stat"; } # utime + stime
# node_quiet: the node used less than 10 % of a core over the next 5 s.
node_quiet() {
  local a b
  a=$(cpu_ticks); sleep 5; b=$(cpu_ticks)
  [ $((b - a)) -lt $((hz / 2)) ]
}
redis_used() { rcli info memory | tr -d '\r' | sed -n 's/^used_memory:\([0-9]*\)$/\1/p'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
per() { awk -v b="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f", b / n; else print "n/a" }'; }
fail() { echo "$*" >&2; echo "--- node log:" >&2; tail -n 50 "$tmp/node.log" >&2; exit 1; }

# wait_until SECONDS INTERVAL CMD...: polls CMD every INTERVAL seconds until
# it succeeds (0) or SECONDS passed (1); fails when the node exits.
wait_until() {
  local limit=$1 every=$2; shift 2
  local t0; t0=$(now)
  until "$@"; do
    node_alive || fail "the node exited"
    awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }' && return 1
    sleep "$every"
  done
}
has_orders() { [ "$(total_orders)" = "$1" ]; }
ready_with() { ready && has_orders "$1"; }

# The read model follows the journal through the transport: wait until
# totalOrders stops moving (two equal readings a second apart).
settle() {
  local a b
  a=$(total_orders)
  while :; do
    sleep 1
    b=$(total_orders)
    [ "$a" = "$b" ] && { echo "$b"; return; }
    a=$b
  done
}

# 1. Start on the empty Redis and create the orders.
start_node
wait_until 60 0.05 ready || fail "node did not become ready on $base"
rss_empty=$(rss_kib)
heap_empty=$(metric go_memstats_heap_inuse_bytes)
live_empty=$(metric go_memstats_heap_alloc_bytes)
glive_empty=$(metric go_gc_heap_live_bytes)
echo "node ready (pid $node_pid), RSS $(mib $((rss_empty * 1024))), heap in use $(mib "$heap_empty") with no orders; idle-timeout ${idle}s"

gen_cmd="loadgen -targets $base -scenario create -concurrency 32 -requests <remaining> -duration 10m"
gen_lines=()
gen_secs=0 runs=0
have=$(total_orders)
create_start=$(now)
while [ "$have" -lt "$orders" ]; do
  remaining=$((orders - have))
  runs=$((runs + 1))
  echo "loadgen run $runs: $remaining orders to create..."
  "${pin_load[@]}" "$tmp/loadgen" -targets "$base" -scenario create -concurrency 32 \
    -requests "$remaining" -duration 10m >"$tmp/gen.out" &
  gen_pid=$!
  wait "$gen_pid" || fail "loadgen failed (run $runs)"
  gen_pid=""
  line=$(grep -m1 '^create ' "$tmp/gen.out" || true)
  echo "$line"
  gen_lines+=("$line")
  el=$(echo "$line" | sed -n 's/.* elapsed=\([0-9.]*\)s.*/\1/p')
  gen_secs=$(awk -v a="$gen_secs" -v b="${el:-0}" 'BEGIN { print a + b }')
  now_have=$(settle)
  [ "$now_have" -gt "$have" ] || fail "loadgen run $runs created no orders"
  have=$now_have
  if [ "$have" -gt "$orders" ]; then
    echo "note: the node has $have orders, more than the $orders asked for (retried creates)" >&2
  fi
done
create_wall=$(since "$create_start")
tput=$(awk -v n="$have" -v s="$gen_secs" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "n/a" }')
echo "created $have orders in ${gen_secs} s of load ($runs run(s), ${create_wall} s with settling): $tput orders/s"

# 2. Memory right after creation.
rss_created=$(rss_kib)
heap_created=$(metric go_memstats_heap_inuse_bytes)
live_created=$(metric go_memstats_heap_alloc_bytes)
glive_created=$(metric go_gc_heap_live_bytes)
actors_created=$(metric order_actors_active)
echo "after creation: RSS $(mib $((rss_created * 1024))), heap in use $(mib "$heap_created"), order actors active $actors_created"

# 3. Wait for the actors to passivate (near 0: at most 0.1% of the orders).
near=$((orders / 1000))
passive() { local a; a=$(metric order_actors_active); [ -n "$a" ] && [ "$a" -le "$near" ]; }
echo "waiting up to $((idle + 60)) s for the order actors to passivate..."
pass_start=$(now)
if wait_until $((idle + 60)) 0.5 passive; then passivated=yes; else passivated=no; fi
pass_secs=$(since "$pass_start")
echo "waiting up to $quiet_max s for the node to go idle (stopped activations being unregistered)..."
quiet_start=$(now)
if wait_until "$quiet_max" 0 node_quiet; then quiet=yes; else quiet=no; fi
quiet_secs=$(since "$quiet_start")
[ "$quiet" = yes ] || echo "warning: the node was still busy after $quiet_max s" >&2
# The heap figures mean something only after a collection that ran once the
# actors were gone: wait for the next GC (an idle Go process is collected at
# least every 2 minutes).
gc0=$(metric go_gc_duration_seconds_count)
echo "waiting up to 150 s for a garbage collection..."
gc_done() { [ "$(metric go_gc_duration_seconds_count)" != "$gc0" ]; }
if wait_until 150 1 gc_done; then gc_after=yes; else gc_after=no; fi
rss_idle=$(rss_kib)
heap_idle=$(metric go_memstats_heap_inuse_bytes)
live_idle=$(metric go_memstats_heap_alloc_bytes)
glive_idle=$(metric go_gc_heap_live_bytes)
actors_idle=$(metric order_actors_active)
echo "after passivation (${pass_secs} s, reached: $passivated; then busy ${quiet_secs} s, idle: $quiet; GC since: $gc_after): RSS $(mib $((rss_idle * 1024))), heap in use $(mib "$heap_idle"), heap allocated $(mib "$live_idle"), order actors active $actors_idle"

# 4. Redis memory.
redis_mem=$(redis_used)
dbsize=$(rcli dbsize | tr -d '\r')
log_mem=$(rcli memory usage ordersystem:log samples 0 | tr -d '\r')
events_mem=$(rcli memory usage orders:events samples 0 | tr -d '\r')
events_len=$(rcli xlen orders:events | tr -d '\r')
echo "redis: used_memory $(mib "$redis_mem") ($(per "$redis_mem" "$have") B/order), $dbsize keys; journal log $(mib "${log_mem:-0}"), transport stream orders:events $(mib "${events_mem:-0}") ($events_len entries)"

# 5. Restart: SIGTERM, start again, time until ready with every order.
echo "restarting the node..."
stop_node
shutdown_secs=$stop_secs shutdown_note=$killed
restart_start=$(now)
start_node
wait_until 1800 0.05 ready_with "$have" || fail "restarted node not ready with $have orders after 1800 s"
restart_secs=$(since "$restart_start")
rss_restart=$(rss_kib)
heap_restart=$(metric go_memstats_heap_inuse_bytes)
live_restart=$(metric go_memstats_heap_alloc_bytes)
glive_restart=$(metric go_gc_heap_live_bytes)
echo "restart: ready with $have orders in ${restart_secs} s; RSS $(mib $((rss_restart * 1024))), heap in use $(mib "$heap_restart")"
stop_node
total_secs=$(since "$script_start")

# 6. The section.
envs=""
[ "$idle" = 120 ] || envs+="SCALE_IDLE_TIMEOUT=$idle "
[ "$quiet_max" = 3600 ] || envs+="SCALE_QUIET_MAX=$quiet_max "
[ "$rport" = 6391 ] || envs+="SCALE_REDIS_PORT=$rport "
[ "$hport" = 5301 ] || envs+="SCALE_HTTP_PORT=$hport "
section=$(
  echo "## Scale: $orders orders on Redis, one node"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), Go $(go env GOVERSION), loopback, $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/Redis \1/p') (private server, no RDB/AOF)."
  echo "Produced by \`${envs}scripts/scale.sh $orders\` in ${total_secs} s: node pinned to CPU 1, load generator to CPU 0."
  echo "Node: \`ordersystem ${node_args[*]}\` (idle timeout ${idle} s$([ "$idle" = 120 ] && echo ", the default"))."
  echo "Load: \`$gen_cmd\`, repeated until \`GET /stats\` shows $orders orders ($runs run(s))."
  echo "RSS is VmRSS of /proc/<pid>/status; heap in use is go_memstats_heap_inuse_bytes of /metrics (spans holding any object), heap allocated go_memstats_heap_alloc_bytes (live objects plus garbage not yet collected), live heap go_gc_heap_live_bytes (marked live by the last GC)."
  echo "The figures after passivation are read after the first garbage collection that followed it (GC seen: $gc_after)."
  echo
  echo "| Figure | Value |"
  echo "|---|---|"
  echo "| Orders created | $have |"
  echo "| Creation throughput (POST /orders, 32 workers) | $tput orders/s ($gen_secs s of load) |"
  echo "| RSS / heap in use / heap allocated, empty node | $(mib $((rss_empty * 1024))) / $(mib "$heap_empty") / $(mib "$live_empty") |"
  echo "| RSS right after creation | $(mib $((rss_created * 1024))) |"
  echo "| Heap in use / allocated right after creation | $(mib "$heap_created") / $(mib "$live_created") |"
  echo "| Order actors active right after creation | $actors_created |"
  echo "| Order actors active after passivation (waited ${pass_secs} s of at most $((idle + 60)) s) | $actors_idle |"
  echo "| Node busy after that, until below 10 % of a core over 5 s (includes the 5 s probe) | $quiet_secs s$([ "$quiet" = yes ] || echo " (still busy: bound reached)") |"
  echo "| RSS after passivation | $(mib $((rss_idle * 1024))) |"
  echo "| Heap in use / allocated after passivation | $(mib "$heap_idle") / $(mib "$live_idle") |"
  echo "| Live heap (go_gc_heap_live_bytes: what the last GC found reachable): empty / after creation / after passivation / after restart | $(mib "$glive_empty") / $(mib "$glive_created") / $(mib "$glive_idle") / $(mib "$glive_restart") |"
  echo "| Live heap per order after passivation, empty node's subtracted (read model, lookup tables) | $(per $((glive_idle - glive_empty)) "$have") B |"
  echo "| Heap per order after passivation (heap in use / orders) | $(per "$heap_idle" "$have") B |"
  echo "| Heap per order after passivation, empty node's heap subtracted: in use / allocated | $(per $((heap_idle - heap_empty)) "$have") B / $(per $((live_idle - live_empty)) "$have") B |"
  echo "| Redis used_memory | $(mib "$redis_mem") ($dbsize keys) |"
  echo "| Redis bytes per order | $(per "$redis_mem" "$have") B |"
  echo "| of which the journal log stream (ordersystem:log) | $(mib "${log_mem:-0}") |"
  echo "| of which the transport stream (orders:events, $events_len entries) | $(mib "${events_mem:-0}") |"
  echo "| Graceful shutdown (SIGTERM to exit) | $shutdown_secs s$shutdown_note |"
  echo "| Start-to-ready after SIGTERM restart (/health/ready 200 and /stats = $have) | $restart_secs s |"
  echo "| RSS after restart | $(mib $((rss_restart * 1024))) |"
  echo "| Heap in use / allocated after restart | $(mib "$heap_restart") / $(mib "$live_restart") |"
  echo
  echo "Load generator:"
  echo
  echo '```'
  printf '%s\n' "${gen_lines[@]}"
  echo '```'
)
echo
echo "$section"
echo

# Replace an earlier "## Scale" section (up to the next "## " heading or the
# end of the file), or append one; the rest of the file is kept as it is.
echo "$section" >"$tmp/section.md"
touch "$out"
awk -v secfile="$tmp/section.md" '
  function emit(  l) { while ((getline l < secfile) > 0) print l; done = 1 }
  /^## Scale([: ]|$)/ { if (!done) emit(); skip = 1; next }
  skip && /^## / { skip = 0; print "" }
  !skip { print; last = $0 }
  END { if (!done) { if (NR > 0 && last != "") print ""; emit() } }
' "$out" >"$tmp/bench.md"
cat "$tmp/bench.md" >"$out"
echo "wrote the Scale section of $out"
