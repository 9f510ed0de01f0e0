#!/usr/bin/env bash
# Measures what tracing costs at full load, interleaved so that every setting
# sees the same (shared, drifting) machine:
#   scripts/tracing.sh [rounds] [seconds] [base-ref]   (default 5, 6, the merge base with main)
# Settings, each an in-memory node on CPU 1 with the load generator (32
# closed-loop workers, -scenario create, then -scenario read) on CPU 0:
#   base  the base-ref's binary (built from a temporary git worktree)
#   off   this tree, no --otlp-endpoint (trace context continued, nothing recorded)
#   otlp  this tree, --otlp-endpoint to cmd/otlpsink on loopback (also on
#         CPU 0): every request is a new sampled trace, every span exported
#   otlp10 the same with OTEL_TRACES_SAMPLER=parentbased_traceidratio and
#         OTEL_TRACES_SAMPLER_ARG=0.1: a tenth of the new traces recorded
# For each it prints the median throughput and the node's CPU per request
# (utime+stime of /proc/<pid>/stat over the run, divided by the requests
# answered), and for otlp the spans the sink received per request.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5} secs=${2:-6} base=${3:-$(git merge-base HEAD main)}
settings="base off otlp otlp10"
tmp=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  git worktree remove --force "$tmp/base-src" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/loadgen" ./cmd/loadgen
go build -o "$tmp/off" ./cmd/ordersystem
go build -o "$tmp/otlpsink" ./cmd/otlpsink
git worktree add -q --detach "$tmp/base-src" "$base"
(cd "$tmp/base-src" && go build -o "$tmp/base" ./cmd/ordersystem)
pin_server="taskset -c 1"; pin_load="taskset -c 0"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || { pin_server=""; pin_load=""; }
port=5430 sinkport=5431
tck=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
sink_spans() { curl -sf "http://127.0.0.1:$sinkport/stats" | sed -n 's/.*"spans":\([0-9]*\).*/\1/p'; }

$pin_load "$tmp/otlpsink" -addr "127.0.0.1:$sinkport" >"$tmp/sink.log" 2>&1 &
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$sinkport/stats" >/dev/null && break; sleep 0.1; done

for r in $(seq 1 "$rounds"); do
  # Every other round runs the settings in reverse order, so that a drift
  # of the machine over a round weighs on all alike.
  order=$settings
  [ $((r % 2)) -eq 0 ] && order=$(echo "$settings" | tr ' ' '\n' | tac | tr '\n' ' ')
  for v in $order; do
    bin=$tmp/$v args=() envs=()
    case $v in
    otlp) bin=$tmp/off args=(--otlp-endpoint "127.0.0.1:$sinkport") ;;
    otlp10) bin=$tmp/off args=(--otlp-endpoint "127.0.0.1:$sinkport")
      envs=(OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1) ;;
    esac
    env "${envs[@]}" $pin_server "$bin" --port "$port" --http-host 127.0.0.1 --log-level warn "${args[@]}" >"$tmp/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
    for s in create read; do
      t0=$(ticks "$pid"); s0=$(sink_spans)
      out=$($pin_load "$tmp/loadgen" -targets "http://127.0.0.1:$port" -duration "${secs}s" -concurrency 32 -scenario "$s")
      t1=$(ticks "$pid")
      # The batch processor exports within 5 s: wait for the sink to settle.
      s1=$(sink_spans); case $v in otlp*) sleep 6; s1=$(sink_spans) ;; esac
      n=$(echo "$out" | sed -n "s/^$s .*requests=\([0-9]*\).*/\1/p")
      tp=$(echo "$out" | sed -n "s/^$s .*throughput=\([0-9.]*\).*/\1/p")
      us=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v tck="$tck" 'BEGIN { printf "%.1f", (b - a) / tck * 1e6 / n }')
      spr=$(awk -v a="$s0" -v b="$s1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n }')
      echo "round=$r setting=$v scenario=$s requests=$n throughput=$tp cpu_us_per_request=$us sink_spans_per_request=$spr" | tee -a "$tmp/results"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
field() { awk -v v="$1" -v s="$2" -v f="$3" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); m[kv[1]] = kv[2] } if (m["setting"] == v && m["scenario"] == s) print m[f] }' "$tmp/results"; }
echo
echo "medians over $rounds interleaved rounds of $secs s ($(nproc) cores, $(date -u +%Y-%m-%d), base $base = $(git rev-parse --short "$base")):"
printf '| %-8s | %-7s | %12s | %14s | %16s |\n' setting scenario requests/s "CPU µs/request" "spans/request"
for s in create read; do
  for v in $settings; do
    printf '| %-8s | %-7s | %12s | %14s | %16s |\n' "$v" "$s" "$(field "$v" "$s" throughput | median)" "$(field "$v" "$s" cpu_us_per_request | median)" \
      "$(field "$v" "$s" sink_spans_per_request | median)"
  done
done
