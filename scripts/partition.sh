#!/usr/bin/env bash
# Node-to-node partition of one member (issue 14): three nodes on a private
# Redis, node3 in its own network namespace; iptables inside the namespace
# drops node3's node-to-node traffic (its HTTP port and Redis stay
# reachable) for CUT seconds, then lets it through again. Prints, for reads
# through node1 of the orders node3 owned: how long until they fail fast
# (503 at once instead of after the request timeout), how long until the
# first is served by another owner; node3's readiness; how long until node3
# is ready again after the cut ends; and whether the three nodes then agree
# on the owner of every order.
#   scripts/partition.sh [cut seconds]   (as root; default 10; needs ip, iptables)
set -euo pipefail
cd "$(dirname "$0")/.."
cut=${1:-10}
tmp=$(mktemp -d)
ns=osp$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  ip link del "v0$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/ordersystem" ./cmd/ordersystem

ip netns add "$ns"
ip link add "v0$ns" type veth peer name "v1$ns"
ip link set "v1$ns" netns "$ns"
ip addr add 10.199.7.1/24 dev "v0$ns"
ip link set "v0$ns" up
ip netns exec "$ns" ip addr add 10.199.7.2/24 dev "v1$ns"
ip netns exec "$ns" ip link set "v1$ns" up
ip netns exec "$ns" ip link set lo up
host=10.199.7.1 far=10.199.7.2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])'; }
rp=$(free_port)
redis-server --port "$rp" --bind "127.0.0.1 $host" --dir "$tmp" --save "" --appendonly no --protected-mode no >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do redis-cli -p "$rp" ping >/dev/null 2>&1 && break; sleep 0.1; done

hp=(0 25201 25202 25203) # remote ports: + 1000
start_node() { # i, advertised host, prefix command
  local i=$1 adv=$2; shift 2
  "$@" "$tmp/ordersystem" --cluster --node-id "node$i" --port "${hp[$i]}" --http-host 0.0.0.0 --advertise-host "$adv" \
    --persistence redis --transport redis --redis "$host:$rp" --drain-delay 0 --log-format text >"$tmp/node$i.log" 2>&1 &
  pids+=($!)
}
start_node 1 "$host"
start_node 2 "$host"
start_node 3 "$far" ip netns exec "$ns"
url=("" "http://$host:${hp[1]}" "http://$host:${hp[2]}" "http://$far:${hp[3]}")
for i in 1 2 3; do
  for _ in $(seq 1 300); do curl -sf -m 1 "${url[$i]}/health/ready" >/dev/null && break; sleep 0.1; done
done
for _ in $(seq 1 100); do
  [ "$(curl -s -m 1 "${url[1]}/" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["members"]))')" = 3 ] && break; sleep 0.1
done

# Orders, and which of them node3 owns.
owned=()
for k in $(seq 1 60); do
  id=$(curl -s -m 5 -X POST "${url[1]}/orders" -H 'Content-Type: application/json' \
    -d '{"customerId":"c'$k'","items":[{"productId":"p","name":"n","quantity":1,"price":1.5}]}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["orderId"])')
  owner=$(curl -s -m 5 -o /dev/null -D - "${url[1]}/orders/$id" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-order-owner"{print $2}')
  echo "$id $owner" >>"$tmp/orders"
  [ "$owner" = node3 ] && owned+=("$id")
done
echo "orders: $(wc -l <"$tmp/orders"), owned by node3: ${#owned[@]}"
[ ${#owned[@]} -gt 0 ] || { echo "node3 owns none"; exit 1; }

r1=$((hp[1] + 1000)) r2=$((hp[2] + 1000)) r3=$((hp[3] + 1000))
rules() { # -A or -D
  ip netns exec "$ns" iptables "$1" INPUT -p tcp --dport "$r3" -j DROP
  ip netns exec "$ns" iptables "$1" OUTPUT -p tcp --sport "$r3" -j DROP
  ip netns exec "$ns" iptables "$1" OUTPUT -p tcp --dport "$r1:$r2" -j DROP
  ip netns exec "$ns" iptables "$1" INPUT -p tcp --sport "$r1:$r2" -j DROP
}
t0=$(date +%s.%N)
rules -A
echo "cut node3's node-to-node port $r3 for ${cut}s"
# Reads through node1 of node3's first order, and node3's readiness, every 200 ms.
end=$(python3 -c "print($t0 + $cut)")
while python3 -c "import sys; sys.exit(0 if $(date +%s.%N) < $end else 1)"; do
  s=$(date +%s.%N)
  out=$(curl -s -m 12 -o /dev/null -D - -w 'status=%{http_code} took=%{time_total}\n' "${url[1]}/orders/${owned[0]}" | tr -d '\r')
  owner=$(echo "$out" | awk -F': ' 'tolower($1)=="x-order-owner"{print $2}')
  st=$(echo "$out" | sed -n 's/^status=\([0-9]*\) took=\(.*\)/\1 \2/p')
  ready=$(curl -s -m 1 -o /dev/null -w '%{http_code}' "${url[3]}/health/ready" || true)
  printf '%6.2f read=%s owner=%s node3_ready=%s\n' "$(python3 -c "print($s - $t0)")" "$st" "${owner:--}" "$ready" | tee -a "$tmp/timeline"
  sleep 0.2
done
rules -D
t1=$(date +%s.%N)
echo "cut ended"
for _ in $(seq 1 300); do curl -sf -m 1 "${url[3]}/health/ready" >/dev/null && break; sleep 0.1; done
printf 'node3 ready again %.2fs after the cut ended\n' "$(python3 -c "print($(date +%s.%N) - $t1)")"
# Reads through node1 of every order node3 owned, for 8 s after its rejoin.
end=$(python3 -c "print($(date +%s.%N) + 8)")
while python3 -c "import sys; sys.exit(0 if $(date +%s.%N) < $end else 1)"; do
  for id in "${owned[@]}"; do
    curl -s -m 12 -o /dev/null -w '%{http_code} %{time_total}\n' "${url[1]}/orders/$id" >>"$tmp/after"
  done
done
awk '{n[$1]++; if ($2 > max) max = $2} END {printf "reads of node3'"'"'s orders through node1 in the 8 s after its rejoin:"; for (s in n) printf " %s x%d", s, n[s]; printf ", slowest %.3fs\n", max}' "$tmp/after"
agree=0 disagree=0
while read -r id _; do
  o=()
  for i in 1 2 3; do
    o+=("$(curl -s -m 5 -o /dev/null -D - "${url[$i]}/orders/$id" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-order-owner"{print $2}')")
  done
  if [ "${o[0]}" = "${o[1]}" ] && [ "${o[1]}" = "${o[2]}" ] && [ -n "${o[0]}" ]; then agree=$((agree + 1)); else disagree=$((disagree + 1)); fi
done <"$tmp/orders"
echo "owner agreement after the cut: $agree agree, $disagree disagree"
echo "--- timeline summary"
awk '{split($2,a,"="); split($4,r,"=");} $2 ~ /read=503/ && !f503 {print "first 503 through node1 at " $1 "s, answered in " $3 "s"; f503=1}
     $2 ~ /read=200/ && $4 !~ /node3/ && !moved {print "first read served by " $4 " at " $1 "s"; moved=1}
     $5 ~ /ready=503/ && !nr {print "node3 not ready at " $1 "s"; nr=1}' "$tmp/timeline"
echo "--- membership logs"
grep -hE "isolated|unreachable over|reachable again|fenced|rejoin|views diverge" "$tmp"/node*.log | cut -c1-260 || true
