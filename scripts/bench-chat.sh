#!/usr/bin/env bash
# Runs every chat-bench scenario of BENCHMARKS.md in one go, each chat figure next to its
# baseline from the same run (raw pingpong through the network core: chat-bench echo against
# examples/echo, same frames, same connections, same in-flight depth).
#
#   scripts/bench-chat.sh [SECONDS]      (default 10 s measured per scenario)
#   BIN=/path/to/other/bin scripts/bench-chat.sh   (another build's server and echo, same load generator)
#   ONLY="chat-pipelined group-50" scripts/bench-chat.sh   (only these rows)
#
# Needs ./autobuild.sh first; the two-server rows need MariaDB and Redis (scripts/setup.sh).
# Prints one markdown row per scenario, with the server's CPU time per unit in the measured
# window (all its threads, from /proc/PID/task/*/schedstat; both servers for the cross rows,
# Redis apart); the full JSON reports go to run/bench/ (or $OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
OUT="${OUT:-$PWD/run/bench}"
BIN="${BIN:-./bin}"
mkdir -p "$OUT"
rm -f "$OUT"/*.json
ulimit -n 20000
BENCH="${BENCH:-./bin/chat-bench}"
CHEAP=(--argon2-m-cost-kib 256 --argon2-t-cost 1)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

SERVER_PIDS=()
start_server() { # PORT EXTRA...
  local port=$1; shift
  "$BIN/server" --listen "127.0.0.1:$port" --threads 2 --log warn "$@" >"$OUT/server-$port.log" 2>&1 &
  PIDS+=($!)
  SERVER_PIDS+=($!)
  wait_port "$port"
}

stop_all() { cleanup; PIDS=(); SERVER_PIDS=(); }

# The pids chat-bench should time: the first server, then the others (and Redis, if asked).
cpu_args() {
  local first=1
  for p in "${SERVER_PIDS[@]}"; do
    if [ $first = 1 ]; then printf -- '--server-pid %s ' "$p"; first=0; else printf -- '--cpu-pid %s ' "$p"; fi
  done
  if [ -n "${REDIS_PID:-}" ]; then printf -- '--cpu-pid %s ' "$REDIS_PID"; fi
}

field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }

run() { # NAME ARGS...
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  echo "== $name: chat-bench $*" >&2
  # shellcheck disable=SC2046
  "$BENCH" "$@" $(cpu_args) --duration "$SECS" --json --quiet >"$OUT/$name.json"
  python3 - "$OUT/$name.json" "$name" "chat-bench $*" "${REDIS_PID:-}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
name, cmd, redis = sys.argv[2], sys.argv[3], sys.argv[4]
others = r.get("other_cpu_us_per_unit", {})
server = r.get("server_cpu_us_per_unit")
servers = None if server is None else server + sum(v for k, v in others.items() if k != redis)
redis_cpu = others.get(redis)
fmt = lambda v: "–" if v is None else f"{v:.3f}"
print(f"| {name} | `{cmd}` | {int(r['rate_per_s'])} | {r['latency']['p50_us']} µs | "
      f"{r['latency']['p99_us']} µs | {r.get('lost', 0)} | {fmt(servers)} µs | {fmt(redis_cpu)} |")
PY
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); $(date -u)"
echo "| run | command | rate/s | p50 | p99 | lost | server CPU per unit | Redis CPU µs per unit |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"

# Baselines: the echo example on the network core, two I/O loops like the chat server.
"$BIN/echo" --listen 127.0.0.1:7100 --threads 2 >/dev/null 2>&1 &
PIDS+=($!)
SERVER_PIDS+=($!)
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
# Acknowledged delivery (the receivers ack each read) and resume-token logins.
run chat-pipelined-acks chat --target 127.0.0.1:7200 --pairs 20 --inflight 100 --acks
run group-50-acks group --target 127.0.0.1:7200 --members 50 --senders 5 --inflight 16 --acks
run login-token login --target 127.0.0.1:7200 --connections 16 --token
stop_all
rm -rf "$DB"

# Two servers on MariaDB and Redis: every message crosses Redis.
if mysqladmin -h127.0.0.1 -uroot ping >/dev/null 2>&1 && redis-cli ping >/dev/null 2>&1; then
  mysql -h127.0.0.1 -uroot -e 'DROP DATABASE IF EXISTS chat_bench; CREATE DATABASE chat_bench'
  redis-cli flushall >/dev/null
  REDIS_PID=$(redis-cli info server | tr -d '\r' | sed -n 's/^process_id://p')
  for port in 7300 7302; do
    start_server $port --db mysql://root@127.0.0.1:3306/chat_bench --redis redis://127.0.0.1:6379 \
      --server-id "bench-$port" "${CHEAP[@]}"
  done
  run cross-pipelined chat --target 127.0.0.1:7300 --target2 127.0.0.1:7302 --pairs 20 --inflight 100
  run cross-group-50 group --target 127.0.0.1:7300 --target2 127.0.0.1:7302 --members 50 --senders 5 --inflight 16
  stop_all
  REDIS_PID=
  mysql -h127.0.0.1 -uroot -e 'DROP DATABASE chat_bench'
fi

# Logins at the default argon2 cost (19 MiB, 2 passes): what the store workers can hash.
DB=$(mktemp -d)
start_server 7400 --db "sqlite:$DB/chat.db"
run login-default-cost login --target 127.0.0.1:7400 --connections 8
run login-token-default-cost login --target 127.0.0.1:7400 --connections 16 --token
stop_all
rm -rf "$DB"

# 19,000 idle logged-in connections in one process, then all dropped at once.
if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" idle "* ]]; then exit 0; fi
DB=$(mktemp -d)
"$BIN/server" --listen 127.0.0.1:7500 --threads 2 --log warn --db "sqlite:$DB/chat.db" "${CHEAP[@]}" >"$OUT/server-7500.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
wait_port 7500
echo "== idle: chat-bench idle --connections 19000 --drop" >&2
"$BENCH" idle --target 127.0.0.1:7500 --connections 19000 --duration 5 --drop --server-pid "$SERVER" --json --quiet >"$OUT/idle.json"
python3 - "$OUT/idle.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("idle 19,000: " + ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("latency",)))
PY
stop_all
rm -rf "$DB"
