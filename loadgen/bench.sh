#!/usr/bin/env bash
# Runs the benchmark matrix recorded in docs/benchmarks.md, against release
# builds of the relay and the load generator on this machine.
#
#   loadgen/bench.sh [chat|latency|idle|fanout|floor|all] [RUNS]
#
# Each case starts a fresh relay on 127.0.0.1:9100 with a fresh database in
# $BENCH_DIR (default /tmp/ferrochat-bench) and prints one JSON line per run
# (loadgen's own report) prefixed with the case name. (fanout: a fresh relay
# per run too, but one database and accounts file for all of its runs.)
# `floor` (not part of `all`) alternates, run by run, the relay with
# relay/examples/floor_relay.rs, a storage-free relay, plain and with its
# fsynced log: the latency floor of this machine, at 10,000 msg/s.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
runs=${2:-3}
dir=${BENCH_DIR:-/tmp/ferrochat-bench}
mkdir -p "$dir"
cargo build --release -q -p ferrochat-relay -p loadgen
if [ "$what" = floor ]; then
    cargo build --release -q -p ferrochat-relay --example floor_relay
fi
bin=${CARGO_TARGET_DIR:-target}/release
port=9100
url=http://127.0.0.1:$port

relay_pid=
stop_relay() {
    if [ -n "$relay_pid" ]; then
        kill "$relay_pid" 2>/dev/null || true
        wait "$relay_pid" 2>/dev/null || true
        relay_pid=
    fi
}
trap stop_relay EXIT

# start_floor [floor_relay flags...]: the storage-free relay, same port.
start_floor() {
    stop_relay
    "$bin/examples/floor_relay" --listen "127.0.0.1:$port" "$@" >"$dir/relay.log" 2>&1 &
    relay_pid=$!
    wait_ready
}

wait_ready() {
    for _ in $(seq 100); do
        curl -sf "$url/healthz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "relay did not start" >&2
    exit 2
}

# start_relay DB_URL SYNC [extra relay flags...]
start_relay() {
    local db=$1 sync=$2
    shift 2
    stop_relay
    rm -f "$dir"/bench.db*
    "$bin/ferrochat-relay" --listen "127.0.0.1:$port" --db "$db" --sqlite-sync "$sync" \
        --rate-limit 1000000 --rate-burst 1000000 --register-limit off --log warn "$@" >"$dir/relay.log" 2>&1 &
    relay_pid=$!
    wait_ready
}

# Every run gets a fresh relay and database; the generator registers its
# accounts first (argon2 memory is returned to the OS: see
# `relay::tune_allocator`), then measures.
# run_case NAME DB_URL SYNC -- LOADGEN ARGS...
run_case() {
    local name=$1 db=$2 sync=$3
    shift 4
    for i in $(seq "$runs"); do
        start_relay "$db" "$sync"
        printf '%s run %s: ' "$name" "$i"
        "$bin/loadgen" --url "$url" --relay-pid "$relay_pid" --quiet --json "$@" || true
    done
    stop_relay
}

file_db="sqlite://$dir/bench.db"
case $what in
chat | all)
    run_case chat-durable "$file_db" full -- chat --pairs 100 --window 64 --duration 15s
    run_case chat-normal "$file_db" normal -- chat --pairs 100 --window 64 --duration 15s
    run_case chat-unsynced "$file_db" off -- chat --pairs 100 --window 64 --duration 15s
    ;;&
latency | all)
    run_case latency-durable "$file_db" full -- chat --pairs 100 --rate 10000 --duration 15s
    run_case latency-1k-durable "$file_db" full -- chat --pairs 100 --rate 1000 --duration 15s
    ;;&
idle | all)
    run_case idle-19900 "$file_db" full -- idle --connections 19900 --tabs 50 --ping-interval 10s --hold 60s --connect-concurrency 256
    ;;&
floor)
    latency=(chat --pairs 100 --rate 10000 --duration 15s)
    for i in $(seq "$runs"); do
        for case in relay floor floor-log; do
            case $case in
            relay) start_relay "$file_db" full ;;
            floor) start_floor ;;
            floor-log) start_floor --log "$dir/floor.log" ;;
            esac
            printf '%s run %s: ' "latency-$case" "$i"
            "$bin/loadgen" --url "$url" --relay-pid "$relay_pid" --quiet --json "${latency[@]}" || true
        done
    done
    stop_relay
    ;;
fanout | all)
    if "$bin/loadgen" fanout --help >/dev/null 2>&1; then
        # 5,001 registrations take minutes (argon2), so the fan-out runs share
        # one database and accounts file: a setup run registers them (its
        # relay's memory is blurred by argon2 and not reported), then every
        # measured run gets a fresh relay process on that database and
        # creates and fills its own group.
        fan_db="sqlite://$dir/fanout.db"
        fan_accounts="$dir/fanout-accounts.json"
        rm -f "$dir"/fanout.db* "$fan_accounts"
        start_relay "$fan_db" full
        "$bin/loadgen" --url "$url" --quiet --json --accounts "$fan_accounts" \
            fanout --members 5000 --messages 1 >/dev/null || true
        run_case fanout-5000 "$fan_db" full -- --accounts "$fan_accounts" fanout --members 5000 --messages 20
    fi
    ;;
esac
