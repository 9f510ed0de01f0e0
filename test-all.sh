#!/usr/bin/env bash
# The seed's "Testing Different Configurations": runs the seed's curl flow
# (create, pay, ship, history, list, stats, health) against a node in every
# transport/persistence configuration whose server answers, and against a
# three-node cluster, and prints a pass/fail table. Loopback only.
#   ./test-all.sh
set -uo pipefail
cd "$(dirname "$0")"
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$bin"' EXIT
go build -o "$bin/ordersystem" ./cmd/ordersystem || exit 1

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
have_redis=0; answers 6379 && have_redis=1
ns="testall$$"   # own cluster name / Redis database keep runs apart
# NATS: a private server (its store in $bin, gone at exit) when nats-server
# is installed, so that nothing is left in the shared server's streams;
# else the shared one on :4222 under this run's own cluster name.
have_nats=0
nats_url="nats://127.0.0.1:4222"; nats_ns=(--cluster-name "$ns")
if command -v nats-server >/dev/null; then
  nport=$((20000 + RANDOM % 20000))
  nats-server -a 127.0.0.1 -p "$nport" -js -sd "$bin/nats" >"$bin/nats.log" 2>&1 &
  for _ in $(seq 1 50); do answers "$nport" && break; sleep 0.1; done
  answers "$nport" && { have_nats=1; nats_url="nats://127.0.0.1:$nport"; nats_ns=(); }
fi
[ $have_nats = 0 ] && answers 4222 && have_nats=1

nodes=()
stop_nodes() { [ ${#nodes[@]} -gt 0 ] && { kill "${nodes[@]}" 2>/dev/null; wait "${nodes[@]}" 2>/dev/null; }; nodes=(); }
start() { # port args...
  local port=$1; shift
  "$bin/ordersystem" --port "$port" --http-host 127.0.0.1 --log-level warn "$@" >"$bin/$port.log" 2>&1 &
  nodes+=($!)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && return 0; sleep 0.1; done
  return 1
}

# flow BASE [BASE2 BASE3]: the seed's Example Usage, each step on the next node.
flow() {
  local b=("$@") n=${#@} i=0 id body
  pick() { echo "${b[$(( i++ % n ))]}"; }
  body=$(curl -sf -X POST "$(pick)/orders" -H 'Content-Type: application/json' -d '{
    "customerId": "customer-123",
    "items": [
      {"productId": "prod-1", "name": "Laptop", "quantity": 1, "price": 999.99},
      {"productId": "prod-2", "name": "Mouse", "quantity": 2, "price": 29.99}]}') || { echo "create failed"; return 1; }
  echo "$body" | grep -q '"total":1059.97' || { echo "create answered $body"; return 1; }
  id=$(echo "$body" | sed -n 's/.*"orderId":"\([^"]*\)".*/\1/p')
  curl -sf -X POST "$(pick)/orders/$id/pay" -H 'Content-Type: application/json' -d '{"paymentMethod": "credit_card"}' | grep -q '"status":"Paid"' || { echo "pay failed"; return 1; }
  curl -sf -X POST "$(pick)/orders/$id/ship" -H 'Content-Type: application/json' -d '{"trackingNumber": "TRACK-12345"}' | grep -q '"status":"Shipped"' || { echo "ship failed"; return 1; }
  [ "$(curl -sf "$(pick)/orders/$id/history" | grep -o '"type":"Order[A-Za-z]*"' | tr '\n' ' ')" = '"type":"OrderCreated" "type":"OrderPaid" "type":"OrderShipped" ' ] || { echo "history is not created, paid, shipped"; return 1; }
  for _ in $(seq 1 50); do curl -sf "$(pick)/orders" | grep -q "\"$id\"" && break; sleep 0.1; done
  curl -sf "$(pick)/orders" | grep -q "\"$id\"" || { echo "order not listed"; return 1; }
  curl -sf "$(pick)/stats" | grep -q '"totalRevenue"' || { echo "stats failed"; return 1; }
  for p in /health /health/live /health/ready; do curl -sf "$(pick)$p" >/dev/null || { echo "$p failed"; return 1; }; done
  return 0
}

results=()
run() { # name needs port args...
  local name=$1 needs=$2 port=$3; shift 3
  case $needs in
    redis) [ $have_redis = 1 ] || { results+=("| $name | skipped: no Redis on 127.0.0.1:6379 |"); return; } ;;
    nats) [ $have_nats = 1 ] || { results+=("| $name | skipped: no NATS on 127.0.0.1:4222 |"); return; } ;;
    both) [ $have_redis = 1 ] && [ $have_nats = 1 ] || { results+=("| $name | skipped: needs Redis and NATS |"); return; } ;;
  esac
  if start "$port" "$@" && out=$(flow "http://127.0.0.1:$port"); then
    results+=("| $name | PASS |")
  else
    results+=("| $name | FAIL ${out:-node did not start: $(tail -1 "$bin/$port.log")} |")
  fi
  stop_nodes
}

redis_db="redis://127.0.0.1:6379/8"
[ $have_redis = 1 ] && redis-cli -n 8 flushdb >/dev/null 2>&1
run "InMemory (Development)" none 5201
run "Redis (Production-like)" redis 5202 --transport redis --persistence redis --redis "$redis_db"
run "NATS (High-performance)" nats 5203 --transport nats --persistence nats --nats "$nats_url" "${nats_ns[@]}"
run "Mixed: NATS transport, Redis persistence" both 5204 --transport nats --persistence redis --redis "$redis_db" --nats "$nats_url" "${nats_ns[@]}"
run "Mixed: Redis transport, NATS persistence" both 5205 --transport redis --persistence nats --redis "$redis_db" --nats "$nats_url" "${nats_ns[@]}"

if [ $have_redis = 1 ]; then
  ok=1
  for i in 1 2 3; do
    start 521$i --cluster --node-id "node$i" --cluster-name "$ns" --transport redis --persistence redis --redis "$redis_db" || ok=0
  done
  if [ $ok = 1 ] && out=$(flow http://127.0.0.1:5211 http://127.0.0.1:5212 http://127.0.0.1:5213); then
    results+=("| Cluster: 3 nodes on Redis, each step on another node | PASS |")
  else
    results+=("| Cluster: 3 nodes on Redis, each step on another node | FAIL ${out:-a node did not start} |")
  fi
  stop_nodes
  redis-cli -n 8 flushdb >/dev/null 2>&1
else
  results+=("| Cluster: 3 nodes on Redis | skipped: no Redis on 127.0.0.1:6379 |")
fi

echo "| Configuration | Result |"
echo "|---|---|"
printf '%s\n' "${results[@]}"
! printf '%s\n' "${results[@]}" | grep -q FAIL
