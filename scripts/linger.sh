#!/usr/bin/env bash
# What --outbox-linger buys: POST /orders on one node with Redis persistence
# and transport, for each linger in turn, rounds interleaved (the machine is
# shared and drifts):
#   scripts/linger.sh [rounds] [seconds] [lingers]   (default 3, 5, "0 5ms 20ms")
# Prints each run (creates/s, node CPU per create from /proc and, for a
# Redis run, the CPU per create of the redis-server on :6379, from its /proc
# when it runs on this machine) and the medians. The backends run in the
# given order in odd rounds and reversed in even ones (a run right after a
# Redis one tends to be the dearer). The node runs on CPU 1, the load generator on CPU 0 (32 workers).
# Needs Redis on 127.0.0.1:6379; uses database 9, emptied before and after
# each run (as scripts/bench.sh does). LINGER_BACKEND: the backends to
# measure, in the same interleaved rounds (default redis; "redis inmemory"
# adds the in-memory node, for the Redis / in-memory ratio; "redis-before" and
# "inmemory-before" run the node binary BENCH_BEFORE_BIN instead, an older
# build to compare with in the same rounds). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; secs=${2:-5}; lingers=${3:-"0 5ms 20ms"}
backends=${LINGER_BACKEND:-redis}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"; redis-cli -n 9 flushdb >/dev/null 2>&1 || true' EXIT
for backend in $backends; do
  case $backend in
  redis | redis-before) redis-cli -p 6379 ping >/dev/null 2>&1 || { echo "$0: no Redis on 127.0.0.1:6379" >&2; exit 1; } ;;
  inmemory | inmemory-before) ;;
  *) echo "$0: LINGER_BACKEND: redis, inmemory, redis-before, inmemory-before; got $backend" >&2; exit 2 ;;
  esac
  if [[ $backend == *-before && ! -x ${BENCH_BEFORE_BIN:-} ]]; then
    echo "$0: $backend needs BENCH_BEFORE_BIN, an executable node binary" >&2; exit 2
  fi
done
go build -o "$tmp/ordersystem" ./cmd/ordersystem
[ -n "${BENCH_BEFORE_BIN:-}" ] && cp "$BENCH_BEFORE_BIN" "$tmp/before"
go build -o "$tmp/loadgen" ./cmd/loadgen
pin_server="taskset -c 1"; pin_load="taskset -c 0"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || { pin_server=""; pin_load=""; }
port=5440
redis_pid=$(redis-cli -p 6379 info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')
cpu_ticks() { if [ -r "/proc/${1:-0}/stat" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo -; fi; }
for r in $(seq 1 "$rounds"); do
  order=$backends
  [ $((r % 2)) = 0 ] && order=$(echo "$backends" | tr ' ' '\n' | tac | tr '\n' ' ')
  for backend in $order; do
  args=(); bin="$tmp/ordersystem"
  [[ $backend == *-before ]] && bin="$tmp/before"
  [ "${backend%-before}" = redis ] && args=(--persistence redis --transport redis --redis redis://127.0.0.1:6379/9)
  for l in $lingers; do
    port=$((port + 1))
    [ "${backend%-before}" = redis ] && redis-cli -n 9 flushdb >/dev/null
    $pin_server "$bin" --port "$port" --http-host 127.0.0.1 --log-level warn --outbox-linger "$l" "${args[@]}" >"$tmp/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
    b=$(awk '{print $14 + $15}' "/proc/$pid/stat"); rb=-
    [ "${backend%-before}" = redis ] && rb=$(cpu_ticks "$redis_pid")
    out=$($pin_load "$tmp/loadgen" -targets "http://127.0.0.1:$port" -scenario create -duration "${secs}s" -concurrency 32)
    a=$(awk '{print $14 + $15}' "/proc/$pid/stat"); ra=-
    [ "$rb" != - ] && ra=$(cpu_ticks "$redis_pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    n=$(echo "$out" | sed -n 's/^create requests=\([0-9]*\).*/\1/p')
    t=$(echo "$out" | sed -n 's/^create .*throughput=\([0-9.]*\).*/\1/p')
    awk -v k="$backend" -v l="$l" -v r="$r" -v t="$t" -v n="$n" -v a="$a" -v b="$b" -v ra="$ra" -v rb="$rb" -v hz="$(getconf CLK_TCK)" \
      'BEGIN { printf "%s %s %d %.0f %.1f %s\n", k, l, r, t, (a - b) / hz / n * 1e6, ra == "-" || rb == "-" ? "-" : sprintf("%.1f", (ra - rb) / hz / n * 1e6) }' | tee -a "$tmp/results"
  done
  done
done
echo
echo "| backend | --outbox-linger | creates/s (median of $rounds) | node CPU per create | redis-server CPU per create |"
echo "|---|---|---|---|---|"
for backend in $backends; do
for l in $lingers; do
  awk -v k="$backend" -v l="$l" '$1 == k && $2 == l { t[++n] = $4; c[n] = $5; if ($6 != "-") s[++m] = $6 }
    function median(a, n,   i, j, x) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x } return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    END { printf "| %s | %s | %.0f/s | %.1f us | %s |\n", k, l, median(t, n), median(c, n), m ? sprintf("%.1f us", median(s, m)) : "-" }' "$tmp/results"
done
done
