#!/usr/bin/env bash
# Runs the benchmark matrix recorded in docs/benchmarks.md, against release
# builds of the relay and the load generator on this machine.
#
#   loadgen/bench.sh [chat|latency|idle|fanout|floor|killrestart|all] [RUNS]
#
# Each case starts a fresh relay on 127.0.0.1:9100 with a fresh database in
# $BENCH_DIR (default /tmp/ferrochat-bench) and prints one JSON line per run
# (loadgen's own report) prefixed with the case name. (fanout: a fresh relay
# per run too, but one database and accounts file for all of its runs.)
# `floor` (not part of `all`) alternates, run by run, the relay with
# relay/examples/floor_relay.rs, a storage-free relay, plain and with its
# fsynced log: the latency floor of this machine, at 10,000 msg/s.
# `killrestart` (not part of `all`) runs `chat --reconnect` at 2,000 msg/s
# and, $KILL_AFTER seconds (default 8) into the run's clock (warm-up
# included), kills the relay with `kill -9` and starts it again on the same
# port and database $DOWN_FOR seconds (default 2) later: the run must show
# no message lost or duplicated and every session back. $KILLRESTART_LOAD
# replaces the chat options (default: --pairs 20 --rate 2000 --warmup 3s
# --duration 20s).
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
    stop_relay
    rm -f "$dir"/bench.db*
    : >"$dir/relay.log"
    launch_relay "$@"
}

# launch_relay DB_URL SYNC [extra relay flags...]: on the database as it is.
launch_relay() {
    local db=$1 sync=$2
    shift 2
    "$bin/ferrochat-relay" --listen "127.0.0.1:$port" --db "$db" --sqlite-sync "$sync" \
        --rate-limit 1000000 --rate-burst 1000000 --register-limit off --log warn "$@" >>"$dir/relay.log" 2>&1 &
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
killrestart)
    kill_after=${KILL_AFTER:-8}
    down_for=${DOWN_FOR:-2}
    load=${KILLRESTART_LOAD:---pairs 20 --rate 2000 --warmup 3s --duration 20s}
    kr_db="sqlite://$dir/killrestart.db"
    for i in $(seq "$runs"); do
        stop_relay
        rm -f "$dir"/killrestart.db*
        : >"$dir/relay.log"
        launch_relay "$kr_db" full
        # shellcheck disable=SC2086 # the load options are words
        "$bin/loadgen" --url "$url" --json chat $load --reconnect \
            >"$dir/killrestart.json" 2>"$dir/killrestart.log" &
        lg=$!
        # The run's clock starts when the sessions are open.
        for _ in $(seq 1200); do
            grep -q 'running: warmup' "$dir/killrestart.log" && break
            sleep 0.05
        done
        sleep "$kill_after"
        kill -9 "$relay_pid"
        wait "$relay_pid" 2>/dev/null || true
        relay_pid=
        echo "killrestart run $i: relay killed at ${kill_after}s, restarting after ${down_for}s" >&2
        sleep "$down_for"
        launch_relay "$kr_db" full
        wait "$lg" || true
        printf 'killrestart run %s: ' "$i"
        cat "$dir/killrestart.json"
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
