#!/usr/bin/env bash
# Runs every chat-bench scenario of BENCHMARKS.md in one go, each chat figure next to its
# baseline from the same run (raw pingpong through the network core: chat-bench echo against
# examples/echo, same frames, same connections, same in-flight depth).
#
#   scripts/bench-chat.sh [SECONDS]      (default 10 s measured per scenario)
#
# Needs ./autobuild.sh first; the two-server rows need MariaDB and Redis (scripts/setup.sh).
# Prints one markdown row per scenario; the full JSON reports go to run/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
OUT="$PWD/run/bench"
mkdir -p "$OUT"
rm -f "$OUT"/*.json
ulimit -n 20000
BENCH=./bin/chat-bench
CHEAP=(--argon2-m-cost-kib 256 --argon2-t-cost 1)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

start_server() { # PORT EXTRA...
  local port=$1; shift
  ./bin/server --listen "127.0.0.1:$port" --threads 2 --log warn "$@" >"$OUT/server-$port.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
}

stop_all() { cleanup; PIDS=(); }

field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }

run() { # NAME ARGS...
  local name=$1; shift
  echo "== $name: chat-bench $*" >&2
  $BENCH "$@" --duration "$SECS" --json --quiet >"$OUT/$name.json"
  local rate p50 p99 lost
  rate=$(field "$OUT/$name.json" "int(r['rate_per_s'])")
  p50=$(field "$OUT/$name.json" "r['latency']['p50_us']")
  p99=$(field "$OUT/$name.json" "r['latency']['p99_us']")
  lost=$(field "$OUT/$name.json" "r.get('lost',0)")
  printf '| %s | `chat-bench %s` | %s | %s µs | %s µs | %s |\n' "$name" "$*" "$rate" "$p50" "$p99" "$lost"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); $(date -u)"
echo "| run | command | rate/s | p50 | p99 | lost |"
echo "|---|---|---:|---:|---:|---:|"

# Baselines: the echo example on the network core, two I/O loops like the chat server.
./bin/echo --listen 127.0.0.1:7100 --threads 2 >/dev/null 2>&1 &
PIDS+=($!)
wait_port 7100
run echo-pipelined echo --target 127.0.0.1:7100 --pairs 20 --inflight 100
run echo-closed echo --target 127.0.0.1:7100 --pairs 64 --inflight 1
stop_all

# One server, SQLite.
DB=$(mktemp -d)
start_server 7200 --db "sqlite:$DB/chat.db" "${CHEAP[@]}"
run chat-pipelined chat --target 127.0.0.1:7200 --pairs 20 --inflight 100
run chat-closed chat --target 127.0.0.1:7200 --pairs 64 --inflight 1
run group-50 group --target 127.0.0.1:7200 --members 50 --senders 5 --inflight 16
run chat-legacy chat --target 127.0.0.1:7200 --pairs 64 --legacy
run reg-cheap reg --target 127.0.0.1:7200 --connections 16
run login-cheap login --target 127.0.0.1:7200 --connections 16
stop_all
rm -rf "$DB"

# Two servers on MariaDB and Redis: every message crosses Redis.
if mysqladmin -h127.0.0.1 -uroot ping >/dev/null 2>&1 && redis-cli ping >/dev/null 2>&1; then
  mysql -h127.0.0.1 -uroot -e 'DROP DATABASE IF EXISTS chat_bench; CREATE DATABASE chat_bench'
  redis-cli flushall >/dev/null
  for port in 7300 7302; do
    start_server $port --db mysql://root@127.0.0.1:3306/chat_bench --redis redis://127.0.0.1:6379 \
      --server-id "bench-$port" "${CHEAP[@]}"
  done
  run cross-pipelined chat --target 127.0.0.1:7300 --target2 127.0.0.1:7302 --pairs 20 --inflight 100
  run cross-group-50 group --target 127.0.0.1:7300 --target2 127.0.0.1:7302 --members 50 --senders 5 --inflight 16
  stop_all
  mysql -h127.0.0.1 -uroot -e 'DROP DATABASE chat_bench'
fi

# Logins at the default argon2 cost (19 MiB, 2 passes): what the store workers can hash.
DB=$(mktemp -d)
start_server 7400 --db "sqlite:$DB/chat.db"
run login-default-cost login --target 127.0.0.1:7400 --connections 8
stop_all
rm -rf "$DB"

# 19,000 idle logged-in connections in one process, then all dropped at once.
DB=$(mktemp -d)
./bin/server --listen 127.0.0.1:7500 --threads 2 --log warn --db "sqlite:$DB/chat.db" "${CHEAP[@]}" >"$OUT/server-7500.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
wait_port 7500
echo "== idle: chat-bench idle --connections 19000 --drop" >&2
$BENCH idle --target 127.0.0.1:7500 --connections 19000 --duration 5 --drop --server-pid "$SERVER" --json --quiet >"$OUT/idle.json"
python3 - "$OUT/idle.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("idle 19,000: " + ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("latency",)))
PY
stop_all
rm -rf "$DB"
