#!/usr/bin/env bash
# Compares two ordersystem binaries on the in-memory HTTP figures, interleaved
# so that both see the same machine (this one is shared and drifts by 20%):
#   scripts/abtest.sh BEFORE_BIN AFTER_BIN [rounds] [seconds]   (default 5, 4)
# Each round starts each binary in turn (node on CPU 1, load generator on CPU
# 0, 32 workers) and runs live, create and read for the given seconds; the
# medians over the rounds are printed, with create/live and read/live.
# Build an older commit's binary with:
#   git worktree add /tmp/old <commit> && (cd /tmp/old && go build -o /tmp/before ./cmd/ordersystem)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 BEFORE_BIN AFTER_BIN [rounds] [seconds]" >&2; exit 2; }
before=$1 after=$2 rounds=${3:-5} secs=${4:-4}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/loadgen" ./cmd/loadgen
pin_server="taskset -c 1"; pin_load="taskset -c 0"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || { pin_server=""; pin_load=""; }
port=5420
for _ in $(seq 1 "$rounds"); do
  for v in before after; do
    b=$before; [ "$v" = after ] && b=$after
    $pin_server "$b" --port "$port" --http-host 127.0.0.1 --log-level warn >"$tmp/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
    $pin_load "$tmp/loadgen" -targets "http://127.0.0.1:$port" -duration "${secs}s" -concurrency 32 -compare live,create,read |
      sed -n "s/^\([a-z]*\) .*throughput=\([0-9.]*\).*/$v \1 \2/p" | tee -a "$tmp/results"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
echo
echo "medians over $rounds rounds of ${secs} s (requests/s):"
for v in before after; do
  for s in live create read; do
    m=$(awk -v v="$v" -v s="$s" '$1 == v && $2 == s { print $3 }' "$tmp/results" | sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
    eval "${v}_$s=$m"
  done
done
printf '%-8s %10s %10s %10s %12s %10s\n' "" live create read create/live read/live
for v in before after; do
  l=${v}_live c=${v}_create rd=${v}_read
  printf '%-8s %10s %10s %10s %12s %10s\n' "$v" "${!l}" "${!c}" "${!rd}" \
    "$(awk -v a="${!c}" -v b="${!l}" 'BEGIN { printf "%.2f", a / b }')" "$(awk -v a="${!rd}" -v b="${!l}" 'BEGIN { printf "%.2f", a / b }')"
done
