#!/usr/bin/env bash
# Server RSS after a long run of password logins at the default argon2 cost (issue 11: the
# hash memory must not stay with the allocator). One server, SQLite, two I/O loops.
#
#   [BIN=./bin] [BENCH=./bin/chat-bench] scripts/bench-login-rss.sh [SECONDS] [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-200}
PORT=${2:-7610}
BIN=${BIN:-./bin}
BENCH=${BENCH:-./bin/chat-bench}
DIR=$(mktemp -d)
"$BIN/server" --listen "127.0.0.1:$PORT" --threads 2 --log warn --db "sqlite:$DIR/chat.db" >"$DIR/log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"' EXIT
sleep 1
echo "before: $(grep VmRSS /proc/$SERVER/status)"
"$BENCH" login --target "127.0.0.1:$PORT" --connections 8 --duration "$SECS" --server-pid "$SERVER" --json --quiet >"$DIR/r.json"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('logins/s', r['rate_per_s'], 'logins', r.get('count'))" "$DIR/r.json"
sleep 2
echo "after: $(grep VmRSS /proc/$SERVER/status)"
