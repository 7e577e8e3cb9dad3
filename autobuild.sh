#!/usr/bin/env bash
# Builds the release binaries into ./bin (server, client, and the echo example).
# Usage: ./autobuild.sh            (then ./bin/server, ./bin/client 127.0.0.1 6000)
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --bins --example echo
mkdir -p bin
for exe in target/release/server target/release/client target/release/chat-bench target/release/examples/echo; do
  [ -x "$exe" ] && cp -f "$exe" bin/
done
echo "built: $(ls bin | tr '\n' ' ')"
