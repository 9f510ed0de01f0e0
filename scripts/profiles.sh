#!/usr/bin/env bash
# Measures what each durability profile costs: POST /orders per second on one
# node (pinned to CPU 1, the load generator to CPU 0), against private
# servers it starts on free ports, the default profile and the durable one
# run back to back and repeated (rounds interleaved, so that the machine's
# drift hits both alike):
#   scripts/profiles.sh [seconds-per-run] [rounds]     (default 6 s, 2 rounds)
#
# redis default : one redis-server, appendonly no (the shared dev server's setup)
# redis durable : a primary with appendonly yes + appendfsync always and one
#                 replica; the node runs with --redis-wait-replicas 1
# nats default  : one nats-server (file storage), --nats-replicas 1
# nats durable  : three nats-servers in a JetStream cluster with
#                 sync_interval: always, --nats-replicas 3
#
# Needs redis-server and Go (the NATS server is built from the module in
# go.mod). Loopback only; everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-6}
rounds=${2:-2}
tmp=$(mktemp -d)
# Servers are started inside command substitutions (subshells), so their
# pids go to a file, not to a shell variable.
pidfile="$tmp/pids"
: >"$pidfile"
kill_recorded() {
  while read -r p; do kill -9 "$p" 2>/dev/null || true; done <"$pidfile"
  : >"$pidfile"
}
cleanup() {
  kill_recorded
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/ordersystem" ./cmd/ordersystem
go build -o "$tmp/loadgen" ./cmd/loadgen
go build -o "$tmp/nats-server" github.com/nats-io/nats-server/v2

pin_server="taskset -c 1"; pin_load="taskset -c 0"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || { pin_server=""; pin_load=""; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 100); do answers "$1" && return 0; sleep 0.1; done; echo "nothing on :$1" >&2; return 1; }
bg() { "$@" >"$tmp/log-$(date +%s%N)" 2>&1 </dev/null & echo $! >>"$pidfile"; }

redis_default() {
  local p; p=$(free_port); mkdir -p "$tmp/r$p"
  bg redis-server --port "$p" --bind 127.0.0.1 --dir "$tmp/r$p" --save "" --appendonly no --protected-mode no
  wait_port "$p"; echo "--persistence redis --transport redis --redis 127.0.0.1:$p"
}
redis_durable() {
  local p r; p=$(free_port); r=$(free_port); mkdir -p "$tmp/r$p" "$tmp/r$r"
  bg redis-server --port "$p" --bind 127.0.0.1 --dir "$tmp/r$p" --save "" --appendonly yes --appendfsync always --protected-mode no
  wait_port "$p"
  bg redis-server --port "$r" --bind 127.0.0.1 --dir "$tmp/r$r" --save "" --appendonly yes --appendfsync always --protected-mode no --replicaof 127.0.0.1 "$p"
  wait_port "$r"
  for _ in $(seq 1 100); do
    redis-cli -p "$p" info replication | grep -q 'connected_slaves:1' && redis-cli -p "$r" info replication | grep -q 'master_link_status:up' && break
    sleep 0.1
  done
  echo "--persistence redis --transport redis --redis 127.0.0.1:$p --redis-wait-replicas 1"
}
nats_default() {
  local p; p=$(free_port)
  bg "$tmp/nats-server" -a 127.0.0.1 -p "$p" -js -sd "$tmp/n$p"
  wait_port "$p"; echo "--persistence nats --transport nats --nats nats://127.0.0.1:$p --nats-replicas 1"
}
nats_durable() {
  local ports=() cports=() mports=() urls="" routes=""
  for i in 1 2 3; do ports+=("$(free_port)"); cports+=("$(free_port)"); mports+=("$(free_port)"); done
  for i in 0 1 2; do routes+="nats://127.0.0.1:${cports[$i]},"; done
  routes=${routes%,}
  for i in 0 1 2; do
    cat >"$tmp/n$i.conf" <<EOF
listen: 127.0.0.1:${ports[$i]}
http: 127.0.0.1:${mports[$i]}
server_name: n$i
jetstream { store_dir: "$tmp/n$i", sync_interval: always }
cluster { name: profiles, listen: 127.0.0.1:${cports[$i]}, routes: [$routes] }
EOF
    bg "$tmp/nats-server" -c "$tmp/n$i.conf"
    urls+="nats://127.0.0.1:${ports[$i]},"
  done
  for i in 0 1 2; do wait_port "${ports[$i]}"; done
  # JetStream answers once the routes are up and a meta leader is elected.
  for i in 0 1 2; do
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:${mports[$i]}/healthz" >/dev/null && break; sleep 0.1; done
  done
  echo "--persistence nats --transport nats --nats ${urls%,} --nats-replicas 3"
}

run_node() { # args... -> prints creates/s
  local port; port=$(free_port)
  # shellcheck disable=SC2086
  $pin_server "$tmp/ordersystem" --port "$port" --http-host 127.0.0.1 --log-level warn --drain-delay 0 $1 >"$tmp/node-$port.log" 2>&1 &
  local node=$!
  echo "$node" >>"$pidfile"
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null || { echo "node did not become ready:" >&2; cat "$tmp/node-$port.log" >&2; return 1; }
  local profile
  profile=$(curl -sf "http://127.0.0.1:$port/" | sed -n 's/.*"profile":"\([a-z]*\)".*/\1/p')
  $pin_load "$tmp/loadgen" -targets "http://127.0.0.1:$port" -scenario create -duration "${secs}s" -concurrency 32 |
    sed -n "s/^create .*throughput=\([0-9.]*\).*/\1/p" | tr '\n' ' '
  echo "$profile"
  kill "$node"; wait "$node" 2>/dev/null || true
}

stop_servers() { kill_recorded; sleep 0.2; }

declare -A sum n
for round in $(seq 1 "$rounds"); do
  for setup in redis_default redis_durable nats_default nats_durable; do
    args=$($setup)
    read -r c profile < <(run_node "$args")
    echo "round $round $setup: $c creates/s (the node reports profile=$profile)"
    sum[$setup]=$(awk -v a="${sum[$setup]:-0}" -v b="$c" 'BEGIN { print a + b }')
    n[$setup]=$(( ${n[$setup]:-0} + 1 ))
    stop_servers
  done
done
echo
echo "| backend | default profile, creates/s | durable profile, creates/s | durable / default |"
echo "|---|---|---|---|"
for be in redis nats; do
  d=$(awk -v s="${sum[${be}_default]}" -v k="${n[${be}_default]}" 'BEGIN { printf "%.0f", s / k }')
  u=$(awk -v s="${sum[${be}_durable]}" -v k="${n[${be}_durable]}" 'BEGIN { printf "%.0f", s / k }')
  echo "| $be | $d | $u | $(awk -v a="$u" -v b="$d" 'BEGIN { printf "%.2f", a / b }') |"
done
