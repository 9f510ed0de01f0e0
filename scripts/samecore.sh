#!/usr/bin/env bash
# Compares two ordersystem binaries' CPU per request when interleaved rounds
# drift more than the step measured: both nodes run at the same time on the
# same core, so both see the same machine. Each round starts both (in memory,
# GOMAXPROCS=1, on CPU 1), warms each up with 3,000 creates, then loads both
# at once for the given seconds (a loadgen with 16 workers each, on CPU 0)
# and reads each node's CPU per request from /proc and the bytes it
# allocated per request (go_memstats_alloc_bytes_total from /metrics), and
# each node's peak resident memory over the round (VmHWM). The
# two binaries swap
# places (port, start order) every other round; the ratio printed at the end
# is B's CPU per request over A's, the geometric mean over the rounds.
# Either binary may be the word "limit": cmd/limitserver (issue 16's bare
# echo + map), built from this tree; it serves no /metrics, so it has no
# allocation figure (0 B).
#   scripts/samecore.sh A_BIN B_BIN [rounds] [seconds] [scenario]   (default 6, 12, create)
#   scripts/samecore.sh limit NODE_BIN [rounds] [seconds] [scenario]
# Loopback only; everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 A_BIN B_BIN [rounds] [seconds] [scenario]" >&2; exit 2; }
a=$1 b=$2 rounds=${3:-6} secs=${4:-12} scenario=${5:-create}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/loadgen" ./cmd/loadgen
if [ "$a" = limit ] || [ "$b" = limit ]; then go build -o "$tmp/limit" ./cmd/limitserver; fi
pin_server="taskset -c 1"; pin_load="taskset -c 0"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || { pin_server=""; pin_load=""; }
peak_rss() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; } # KiB
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
allocated() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^go_memstats_alloc_bytes_total/ { n = $2 } END { printf "%d", n }'; }
serve() { # binary port; run in the background, it becomes the server (so $! is its pid)
  if [ "$1" = limit ]; then exec env GOMAXPROCS=1 $pin_server "$tmp/limit" -port "$2"; fi
  exec env GOMAXPROCS=1 $pin_server "$1" --port "$2" --http-host 127.0.0.1 --log-level warn
}
tck=$(getconf CLK_TCK)
for r in $(seq 1 "$rounds"); do
  first=$a second=$b
  if [ $((r % 2)) -eq 0 ]; then first=$b second=$a; fi
  serve "$first" 5441 >"$tmp/n1.log" 2>&1 &
  p1=$!
  serve "$second" 5442 >"$tmp/n2.log" 2>&1 &
  p2=$!
  for server in "5441 $first n1" "5442 $second n2"; do
    read -r port bin log <<<"$server"
    probe=ready; [ "$bin" = limit ] && probe=live
    for _ in $(seq 1 100); do curl -sf -m 0.5 "http://127.0.0.1:$port/health/$probe" >/dev/null && break; sleep 0.1; done
    curl -sf -m 0.5 "http://127.0.0.1:$port/health/$probe" >/dev/null || { echo "$bin did not come up on port $port (is the port taken?):" >&2; tail -5 "$tmp/$log.log" >&2; exit 1; }
  done
  for port in 5441 5442; do
    $pin_load "$tmp/loadgen" -targets "http://127.0.0.1:$port" -scenario create -concurrency 16 -requests 3000 >/dev/null &
  done
  wait "$!"; sleep 0.5
  m1=$(allocated 5441); m2=$(allocated 5442)
  c1=$(cpu_ticks $p1); c2=$(cpu_ticks $p2)
  $pin_load "$tmp/loadgen" -targets http://127.0.0.1:5441 -scenario "$scenario" -concurrency 16 -duration "${secs}s" >"$tmp/l1" &
  l1=$!
  $pin_load "$tmp/loadgen" -targets http://127.0.0.1:5442 -scenario "$scenario" -concurrency 16 -duration "${secs}s" >"$tmp/l2"
  wait $l1
  d1=$(( $(cpu_ticks $p1) - c1 )); d2=$(( $(cpu_ticks $p2) - c2 ))
  a1=$(( $(allocated 5441) - m1 )); a2=$(( $(allocated 5442) - m2 ))
  n1=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$tmp/l1" | head -1); n2=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$tmp/l2" | head -1)
  h1=$(peak_rss $p1); h2=$(peak_rss $p2)
  kill $p1 $p2; wait $p1 $p2 2>/dev/null || true
  if [ "$first" = "$a" ]; then echo "$r $d1 $n1 $d2 $n2 $a1 $a2 $h1 $h2"; else echo "$r $d2 $n2 $d1 $n1 $a2 $a1 $h2 $h1"; fi >>"$tmp/rounds"
  awk -v t="$tck" -v sc="$scenario" 'END { printf "round %d %s: A %.1f us and %.0f B allocated per request (%d), B %.1f us and %.0f B (%d), B/A CPU %.3f; peak RSS A %.0f MiB, B %.0f MiB\n", $1, sc, $2*1e6/t/$3, $6/$3, $3, $4*1e6/t/$5, $7/$5, $5, ($4/$5)/($2/$3), $8/1024, $9/1024 }' "$tmp/rounds"
done
awk '{ s += log(($4/$5)/($2/$3)); n++; if (($4/$5) < ($2/$3)) lower++; aa += $6/$3; ab += $7/$5; ha += $8; hb += $9 } END { printf "B/A CPU per request: %.3f (geometric mean of %d rounds; B the cheaper in %d); allocated per request: A %.0f B, B %.0f B; peak RSS (mean): A %.0f MiB, B %.0f MiB\n", exp(s/n), n, lower, aa/n, ab/n, ha/n/1024, hb/n/1024 }' "$tmp/rounds"
