#!/usr/bin/env bash
# The order path next to its physical limit (issue 16): an in-memory node and
# cmd/limitserver (bare echo + encoding/json + a mutex-guarded map, the same
# routes) under the same load, server CPU per request read from /proc, rounds
# interleaved (node, limit, node, limit, ...; every other round in reverse
# order) because this machine is shared.
#   scripts/limit.sh [seconds-per-scenario] [rounds]   (default 8 s, 3 rounds)
# Each server runs alone with GOMAXPROCS=1 on CPU 1, the load generator on
# CPU 0 (taskset, when there are 2+ CPUs), 32 closed-loop workers. Each
# server runs with its own defaults (the node's GOGC=200 and memory limit;
# the limit server's Go defaults). Prints one line per round and server,
# then a markdown table of the medians and the node/limit ratios.
#
# BENCH_NODE_BIN: measure this node binary instead of building the tree's.
# BENCH_BEFORE_BIN: also measure this (older) node binary in the same rounds,
#   as the "before" column (e.g. go build -o /tmp/before ./cmd/ordersystem on
#   an older commit); BENCH_BEFORE_NAME says what it is in the written text
#   (e.g. "commit 3c0b00d").
# LIMIT_OUT: also write the table (with a line saying how it was made) there.
# Loopback only; everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}; rounds=${2:-3}
[[ $secs =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [seconds-per-scenario] [rounds]" >&2; exit 2; }
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT
if [ -n "${BENCH_NODE_BIN:-}" ]; then cp "$BENCH_NODE_BIN" "$bin/node"; else go build -o "$bin/node" ./cmd/ordersystem; fi
servers="node limit"
if [ -n "${BENCH_BEFORE_BIN:-}" ]; then cp "$BENCH_BEFORE_BIN" "$bin/before"; servers="node before limit"; fi
go build -o "$bin/limit" ./cmd/limitserver
go build -o "$bin/loadgen" ./cmd/loadgen
pin_server="taskset -c 1"; pin_load="taskset -c 0"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || { pin_server=""; pin_load=""; }
tck=$(getconf CLK_TCK)
pool=1000

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run SCENARIO PID PORT: prints "<requests> <cpu seconds> <throughput>" of the server.
run() {
  local before after out n tput
  before=$(cpu_ticks "$2")
  out=$($pin_load "$bin/loadgen" -targets "http://127.0.0.1:$3" -scenario "$1" -duration "${secs}s" -concurrency 32 -pool $pool)
  after=$(cpu_ticks "$2")
  n=$(echo "$out" | sed -n "s/^$1 requests=\([0-9]*\).*/\1/p")
  tput=$(echo "$out" | sed -n "s/^$1 .*throughput=\([0-9.]*\).*/\1/p")
  echo "$n $(awk -v a="$before" -v b="$after" -v t="$tck" 'BEGIN { printf "%.3f", (b - a) / t }') $tput"
}

start() { # name port
  local port=$2
  if [ "$1" = limit ]; then
    GOMAXPROCS=1 $pin_server "$bin/limit" -port "$port" >"$bin/$1.log" 2>&1 &
  else
    GOMAXPROCS=1 $pin_server "$bin/$1" --port "$port" --http-host 127.0.0.1 --log-level warn >"$bin/$1.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && return 0; sleep 0.1; done
  echo "$1 did not start" >&2; cat "$bin/$1.log" >&2; return 1
}

results="$bin/results"
: >"$results"
port=5310
for r in $(seq 1 "$rounds"); do
  order=$servers
  [ $((r % 2)) -eq 0 ] && order=$(echo "$servers" | awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "") }')
  for srv in $order; do
    port=$((port + 1)) # a fresh port: the last server may still be closing its own
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
table=$(awk -v servers="$servers" '
  function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  { k = $1; n[k]++; v[k, 1, n[k]] = $3; v[k, 2, n[k]] = $4; v[k, 3, n[k]] = $5; t[k, 1, n[k]] = $6; t[k, 2, n[k]] = $7; t[k, 3, n[k]] = $8 }
  END {
    ns = split(servers, sv, " "); before = ns == 3
    split("POST /orders|GET /orders/{id}|GET /health/live", names, "|")
    if (before) {
      print "| operation | node: CPU per request | before | limit (echo + map) | node / limit | before / limit | node throughput | before throughput | limit throughput |"
      print "|---|---|---|---|---|---|---|---|---|"
    } else {
      print "| operation | node: CPU per request | limit (echo + map) | node / limit | node throughput | limit throughput |"
      print "|---|---|---|---|---|---|"
    }
    for (o = 1; o <= 3; o++) {
      for (s = 1; s <= ns; s++) {
        k = sv[s]; m = n[k]
        for (i = 1; i <= m; i++) { x[i] = v[k, o, i]; y[i] = t[k, o, i] }
        cpu[k] = median(x, m); tp[k] = median(y, m)
      }
      if (before)
        printf "| `%s` | %.1f us | %.1f us | %.1f us | %.2fx | %.2fx | %.0f/s | %.0f/s | %.0f/s |\n", names[o], cpu["node"], cpu["before"], cpu["limit"], cpu["node"] / cpu["limit"], cpu["before"] / cpu["limit"], tp["node"], tp["before"], tp["limit"]
      else
        printf "| `%s` | %.1f us | %.1f us | %.2fx | %.0f/s | %.0f/s |\n", names[o], cpu["node"], cpu["limit"], cpu["node"] / cpu["limit"], tp["node"], tp["limit"]
    }
  }' "$results")
echo
echo "$table"
if [ -n "${LIMIT_OUT:-}" ]; then
  {
    echo "Medians of $rounds interleaved rounds (every other round in reverse order), ${secs} s per scenario, by \`scripts/limit.sh $secs $rounds\`$([ -n "${BENCH_BEFORE_BIN:-}" ] && echo "; \"before\" is ${BENCH_BEFORE_NAME:-an older build} (\`BENCH_BEFORE_BIN\`)"): each server alone with GOMAXPROCS=1 on CPU 1, \`loadgen -concurrency 32\` on CPU 0; CPU per request is the server's utime + stime from \`/proc/<pid>/stat\` over the run divided by the requests answered (the read run's warm-up creates taken out)."
    echo
    echo "$table"
  } >"$LIMIT_OUT"
fi
