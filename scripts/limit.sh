#!/usr/bin/env bash
# The order path next to its physical limit (issue 16): an in-memory node and
# cmd/limitserver (bare echo + encoding/json + a mutex-guarded map, the same
# routes) under the same load, server CPU per request read from /proc, rounds
# interleaved (node, limit, node, limit, ...) because this machine is shared.
#   scripts/limit.sh [seconds-per-scenario] [rounds]   (default 8 s, 3 rounds)
# Each server runs alone with GOMAXPROCS=1 on CPU 1, the load generator on
# CPU 0 (taskset, when there are 2+ CPUs). Prints one line per round and
# server, then the medians and the node/limit ratios. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}; rounds=${2:-3}
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT
if [ -n "${BENCH_NODE_BIN:-}" ]; then cp "$BENCH_NODE_BIN" "$bin/ordersystem"; else go build -o "$bin/ordersystem" ./cmd/ordersystem; fi
go build -o "$bin/limitserver" ./cmd/limitserver
go build -o "$bin/loadgen" ./cmd/loadgen
pin_server="taskset -c 1"; pin_load="taskset -c 0"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || { pin_server=""; pin_load=""; }
tck=$(getconf CLK_TCK)
pool=1000

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run SCENARIO PID PORT: prints "<requests> <cpu seconds>" of the server.
run() {
  local before after out n
  before=$(cpu_ticks "$2")
  out=$($pin_load "$bin/loadgen" -targets "http://127.0.0.1:$3" -scenario "$1" -duration "${secs}s" -concurrency 32 -pool $pool)
  after=$(cpu_ticks "$2")
  n=$(echo "$out" | sed -n "s/^$1 requests=\([0-9]*\).*/\1/p")
  tput=$(echo "$out" | sed -n "s/^$1 .*throughput=\([0-9.]*\).*/\1/p")
  echo "$n $(awk -v a="$before" -v b="$after" -v t="$tck" 'BEGIN { printf "%.3f", (b - a) / t }') $tput"
}

start() { # name port
  local port=$2
  if [ "$1" = node ]; then
    GOMAXPROCS=1 $pin_server "$bin/ordersystem" --port "$port" --http-host 127.0.0.1 --log-level warn >"$bin/$1.log" 2>&1 &
  else
    GOMAXPROCS=1 $pin_server "$bin/limitserver" -port "$port" >"$bin/$1.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && return 0; sleep 0.1; done
  echo "$1 did not start" >&2; cat "$bin/$1.log" >&2; return 1
}

results="$bin/results"
: >"$results"
for r in $(seq 1 "$rounds"); do
  for srv in node limit; do
    port=5310; [ "$srv" = limit ] && port=5311
    start "$srv" "$port"
    read -r cn cc ct < <(run create "$pid" "$port")
    read -r rn rc rt < <(run read "$pid" "$port")
    read -r ln lc lt < <(run live "$pid" "$port")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    # us per request; the read phase's CPU includes its warm-up of $pool
    # creates, taken out at this round's create cost.
    awk -v s="$srv" -v r="$r" -v cn="$cn" -v cc="$cc" -v rn="$rn" -v rc="$rc" -v ln="$ln" -v lc="$lc" -v p="$pool" \
      -v ct="$ct" -v rt="$rt" -v lt="$lt" 'BEGIN {
        c = cc / cn * 1e6; rd = (rc - p * cc / cn) / rn * 1e6; l = lc / ln * 1e6
        printf "%s %d %.1f %.1f %.1f %s %s %s\n", s, r, c, rd, l, ct, rt, lt }' | tee -a "$results"
  done
done
echo
echo "| operation | node: server CPU per request | limit (echo + map) | ratio | node throughput | limit throughput |"
echo "|---|---|---|---|---|---|"
awk '
  function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  { k = $1; n[k]++; c[k, n[k]] = $3; rd[k, n[k]] = $4; l[k, n[k]] = $5; ct[k, n[k]] = $6; rt[k, n[k]] = $7; lt[k, n[k]] = $8 }
  END {
    split("create read live", ops, " "); split("POST /orders|GET /orders/{id}|GET /health/live", names, "|")
    for (o = 1; o <= 3; o++) {
      for (s = 1; s <= 2; s++) {
        k = s == 1 ? "node" : "limit"; m = n[k]
        for (i = 1; i <= m; i++) { x[i] = (o == 1 ? c[k, i] : o == 2 ? rd[k, i] : l[k, i]); y[i] = (o == 1 ? ct[k, i] : o == 2 ? rt[k, i] : lt[k, i]) }
        cpu[s] = median(x, m); tp[s] = median(y, m)
      }
      printf "| `%s` | %.0f us | %.0f us | %.2fx | %.0f/s | %.0f/s |\n", names[o], cpu[1], cpu[2], cpu[1] / cpu[2], tp[1], tp[2]
    }
  }' "$results"
