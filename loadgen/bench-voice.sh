#!/usr/bin/env bash
# The voice rows of docs/benchmarks.md (issue 14), against release builds of
# the relay and the load generator on this machine.
#
#   loadgen/bench-voice.sh [RUNS]
#
# 1. Registers the accounts once (argon2 makes 4,000 registrations take
#    minutes) on a file database, stops that relay and keeps a copy of the
#    database: every measured run gets a fresh relay on a fresh copy (the
#    accounts, no groups from earlier runs).
# 2. RUNS times (default 2), alternating in the same session:
#    voice-floor: 10 rooms × 50 participants × 2 speakers with the chat side
#                 load, and chat-alone: the same chat load without voice
#                 (`--rooms 0`), so chat latency with and without voice can
#                 be compared.
# 3. Steps the rooms up ($STEPS, default "20 40 80"), RUNS times each, with
#    the same chat side load, and stops after a step where no run met
#    p99 < 50 ms.
#
# Each run prints one JSON line (loadgen's report) prefixed with the case's
# name, and a one-line digest on stderr. Environment: $BENCH_DIR (default
# /tmp/ferrochat-voice-bench), $CHAT_PAIRS (50), $CHAT_RATE (500 msg/s),
# $DURATION (20s), $STEPS.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2}
dir=${BENCH_DIR:-/tmp/ferrochat-voice-bench}
chat_pairs=${CHAT_PAIRS:-50}
chat_rate=${CHAT_RATE:-500}
duration=${DURATION:-20s}
steps=${STEPS:-20 40 80}
participants=50
mkdir -p "$dir"
cargo build --release -q -p ferrochat-relay -p loadgen
bin=${CARGO_TARGET_DIR:-target}/release
port=9110
url=http://127.0.0.1:$port

source loadgen/bench-relay.sh

start_relay() {
    start_relay_on "$port" "sqlite://$dir/bench.db" "$dir/relay.log" \
        --sqlite-sync full --voice-capacity "$participants"
}

# A fresh relay on a fresh copy of the registered database.
fresh_relay() {
    stop_relay
    rm -f "$dir"/bench.db*
    for f in "$dir"/seed/bench.db*; do cp "$f" "$dir/"; done
    start_relay
}

max_rooms=0
for r in 10 $steps; do [ "$r" -gt "$max_rooms" ] && max_rooms=$r; done
accounts="$dir/accounts.json"
need=$((max_rooms * participants + 2 * chat_pairs))
if [ ! -f "$accounts" ] || [ "$(jq length "$accounts")" -lt "$need" ] || [ ! -d "$dir/seed" ]; then
    echo "registering $need accounts (once)" >&2
    rm -rf "$dir"/bench.db* "$dir/seed" "$accounts"
    : >"$dir/relay.log"
    start_relay
    "$bin/loadgen" --url "$url" --quiet --json --accounts "$accounts" \
        idle --connections "$need" --tabs 1 --hold 1s >/dev/null || true
    [ -f "$accounts" ] || { echo "registration failed" >&2; exit 2; }
    stop_relay
    mkdir -p "$dir/seed"
    cp "$dir"/bench.db* "$dir/seed/"
fi

chat=(--chat-pairs "$chat_pairs" --chat-rate "$chat_rate")
common=(--participants "$participants" --speakers 2 --frame-bytes 100 --interval 20ms
    --warmup 3s --duration "$duration")

# run_one NAME ROOMS: one measured run; prints its JSON line, a digest on
# stderr, and returns 0 when its audio p99 is under 50 ms.
run_one() {
    local name=$1 rooms=$2 json
    fresh_relay
    json=$("$bin/loadgen" --url "$url" --relay-pid "$relay_pid" --quiet --json \
        --accounts "$accounts" voice --rooms "$rooms" "${common[@]}" "${chat[@]}" || true)
    printf '%s: %s\n' "$name" "$json"
    # The 1-minute load average after the run: other jobs on these cores
    # show up here (the generator and the relay alone stay under 2).
    jq -r --arg n "$name" --arg load "$(cut -d' ' -f1 /proc/loadavg)" '.results as $r | "\($n) (load \($load)): audio sent \($r.framesSent) recv \($r.received)/\($r.expected) lost \($r.lossPct)% p50 \($r.latency.p50Us) p99 \($r.latency.p99Us) max \($r.latency.maxUs) us; chat p50 \($r.chat.latency.p50Us) p99 \($r.chat.latency.p99Us) us; relay cpu \($r.relayCpuPct)% rss \($r.relayRssAfterKib) KiB; failures \(.failures)"' \
        <<<"$json" >&2 || true
    [ "$rooms" -gt 0 ] && jq -e '.results.latency.p99Us < 50000' <<<"$json" >/dev/null 2>&1
}

for i in $(seq "$runs"); do
    run_one "voice-floor-10x50x2 run $i" 10 || true
    run_one "chat-alone run $i" 0 || true
done
for rooms in $steps; do
    met=0
    for i in $(seq "$runs"); do
        if run_one "voice-${rooms}x50x2 run $i" "$rooms"; then met=$((met + 1)); fi
    done
    if [ "$met" -eq 0 ]; then
        echo "no run at $rooms rooms met p99 < 50 ms; stopping" >&2
        break
    fi
done
stop_relay
