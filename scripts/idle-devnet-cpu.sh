#!/usr/bin/env bash
# Measures what an idle 4-validator devnet costs: the CPU time of its validator processes over
# a window (from /proc/<pid>/stat, user + system), the blocks it finalizes meanwhile, and then
# the latency of one transfer submitted to the idle chain (`exo account transfer --wait`).
#
# Usage: scripts/idle-devnet-cpu.sh [EXO_BINARY]
#   SECS=60          length of the measured window, in seconds
#   WARMUP=20        seconds between starting the devnet and the window
#   EMPTY_BLOCK_MS=  if set, replaces `empty_block_ms` in every node's config.toml (0 makes
#                    a leader propose an empty block as soon as its view starts: the behaviour
#                    before idle leaders held empty blocks back)
#   API_PORT=38180 P2P_PORT=39100
# Prints one line of JSON. Needs curl and jq. Stops the devnet it started and deletes its data.
set -euo pipefail

EXO=${1:-target/release/exo}
SECS=${SECS:-60}
WARMUP=${WARMUP:-20}
API_PORT=${API_PORT:-38180}
P2P_PORT=${P2P_PORT:-39100}
DATA=$(mktemp -d)
DEVNET=

cleanup() {
    if [ -n "$DEVNET" ]; then
        kill "$DEVNET" 2>/dev/null || true
        wait "$DEVNET" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT

"$EXO" devnet --data "$DATA" --api-port "$API_PORT" --p2p-port "$P2P_PORT" --init-only >/dev/null
if [ -n "${EMPTY_BLOCK_MS:-}" ]; then
    sed -i "s/^empty_block_ms = .*/empty_block_ms = $EMPTY_BLOCK_MS/" "$DATA"/node-*/config.toml
fi
"$EXO" devnet --data "$DATA" --api-port "$API_PORT" --p2p-port "$P2P_PORT" >"$DATA/devnet.log" 2>&1 &
DEVNET=$!
sleep "$WARMUP"

# The validators are the devnet's child processes.
NODES=$(ps --ppid "$DEVNET" -o pid= | tr -s ' \n' ' ')
ticks() {
    local total=0 pid
    for pid in $NODES; do
        # Fields 14 and 15 of /proc/<pid>/stat (after the command name) are utime and stime.
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}
height() {
    curl -sf "http://127.0.0.1:$API_PORT/v1/status" | jq .finalized_height
}

h0=$(height) || { echo "the devnet did not start; see its log:" >&2; cat "$DATA/devnet.log" >&2; exit 1; }
t0=$(ticks)
sleep "$SECS"
t1=$(ticks)
h1=$(height)

# One transfer on the idle chain, from the faucet to a fresh account.
"$EXO" key new --out "$DATA/recipient.key" >/dev/null
to=$("$EXO" --json key show "$DATA/recipient.key" | jq -r .address)
start=$(date +%s%N)
"$EXO" --node "http://127.0.0.1:$API_PORT" account transfer --key "$DATA/faucet.key" \
    --to "$to" --amount 1 --wait --timeout 30 >/dev/null
end=$(date +%s%N)

hz=$(getconf CLK_TCK)
jq -n --argjson ticks "$((t1 - t0))" --argjson hz "$hz" --argjson secs "$SECS" \
    --argjson blocks "$((h1 - h0))" --argjson nodes "$(echo "$NODES" | wc -w)" \
    --argjson latency_ms "$(((end - start) / 1000000))" \
    --arg empty_block_ms "${EMPTY_BLOCK_MS:-default}" '{
        empty_block_ms: $empty_block_ms,
        nodes: $nodes,
        cpu_percent_of_one_core: (($ticks / $hz) / $secs * 100 * 100 | round / 100),
        blocks: $blocks,
        blocks_per_sec: ($blocks / $secs * 100 | round / 100),
        transfer_latency_ms: $latency_ms
    }'
