#!/usr/bin/env bash
# The support desk rows of docs/benchmarks.md on one box: a release relay on
# an SQLite file and the `desk` scenario against it (issue: 1,000 visitors
# arriving over 60 s, 20 agents of capacity 5).
#
#   loadgen/bench-desk.sh [RUNS]
#
# Every run gets a fresh database and a fresh relay (`--visitor-limit off --visitor-message-limit off`:
# every visitor comes from 127.0.0.1); loadgen registers the agents, grants
# them with `ferrochat-relay admin grant-agent` (through the running
# relay's admin socket) and runs. One JSON line per run, prefixed with its
# name, and a one-line digest on stderr. Environment: $BENCH_DIR (default
# /tmp/ferrochat-desk-bench), $VISITORS (1000), $ARRIVAL (60s), $AGENTS
# (20), $CAPACITY (5), $MESSAGES (3), $REPLY_DELAY (0ms).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
dir=${BENCH_DIR:-/tmp/ferrochat-desk-bench}
mkdir -p "$dir"
cargo build --release -q -p ferrochat-relay -p loadgen
bin=${CARGO_TARGET_DIR:-target}/release
port=9120
url=http://127.0.0.1:$port
source loadgen/bench-relay.sh

desk=(--visitors "${VISITORS:-1000}" --arrival "${ARRIVAL:-60s}" --agents "${AGENTS:-20}"
    --capacity "${CAPACITY:-5}" --messages "${MESSAGES:-3}" --reply-delay "${REPLY_DELAY:-0ms}")

for i in $(seq "$runs"); do
    rm -f "$dir"/bench.db*
    : >"$dir/relay.log"
    db="sqlite://$dir/bench.db"
    start_relay_on "$port" "$db" "$dir/relay.log" --visitor-limit off --visitor-message-limit off
    name="desk-1box run $i"
    json=$("$bin/loadgen" --url "$url" --relay-pid "$relay_pid" --quiet --json desk "${desk[@]}" \
        --relay-bin "$bin/ferrochat-relay" --db "$db" || true)
    printf '%s: %s\n' "$name" "$json"
    # The 1-minute load average after the run: other jobs on these cores.
    jq -r --arg n "$name" --arg load "$(cut -d' ' -f1 /proc/loadavg)" '.results as $r | "\($n) (load \($load)): served \($r.visitorsServed)/\(.params.visitors) assign p50 \($r.timeToAssignment.p50Ms) p90 \($r.timeToAssignment.p90Ms) p99 \($r.timeToAssignment.p99Ms) max \($r.timeToAssignment.maxMs) ms; max queued \($r.maxQueued); msgs \($r.visitorToAgent.sent)/\($r.agentToVisitor.sent) lost \($r.lost) dup \($r.duplicates); relay cpu \($r.relayCpuPct)% rss \($r.relayRssAfterKib) KiB; failures \(.failures)"' \
        <<<"$json" >&2 || true
    stop_relay
done
