#!/usr/bin/env bash
# A/B comparison: runs each row of scripts/bench-chat.sh with two builds, alternately (A, B,
# A, B, ...), so both see the same drift of this shared machine's load. The load generator is
# ./bin/chat-bench for both; only the server (and echo) differ.
#
#   A=/path/to/old/bin [B=./bin] [SECS=10] [ROWS="chat-pipelined group-50"] scripts/bench-ab.sh
#
# Prints each row of bench-chat.sh prefixed by A or B.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${A:?set A to the bin directory of the other build (server, echo)}"
B=${B:-./bin}
SECS=${SECS:-10}
ROWS=${ROWS:-"echo-pipelined echo-closed chat-pipelined chat-closed group-50 chat-legacy reg-cheap login-cheap cross-pipelined cross-group-50"}
for row in $ROWS; do
  for side in A B; do
    bin=$A
    [ "$side" = B ] && bin=$B
    line=$(BIN=$bin ONLY="$row" OUT="$PWD/run/bench-ab-$side" scripts/bench-chat.sh "$SECS" 2>/dev/null | grep "^| $row " || true)
    echo "$side ${line:-| $row | (no result) |}"
  done
done
