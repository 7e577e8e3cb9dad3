#!/usr/bin/env bash
# The test command: prepares the machine (scripts/setup.sh), then runs every test in release
# mode. Extra arguments go to `cargo test` (e.g. `./scripts/test.sh --test cluster_chat`).
# CHATSERVER_REQUIRE_SERVICES=1 makes a missing MariaDB, Redis or nginx fail the tests that
# need it instead of skipping them (.ci/run sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# --no-fail-fast: one failing test binary must not hide the results of the others.
exec cargo test --release --no-fail-fast "$@"
