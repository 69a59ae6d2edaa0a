#!/usr/bin/env bash
# The cluster rows of docs/benchmarks.md: private PostgreSQL and Redis on
# loopback, one or two release relays on them, and the load generator
# talking to the relays directly (no nginx).
#
#   loadgen/bench-cluster.sh [closed|offered|latency|single|sqlite|fanout|kill|pglatency|voice|desk|all] [RUNS]
#
# closed:  2 relays, every pair across them, closed loop (the throughput floor)
# offered: 2 relays, every pair across them, offered $OFFERED msg/s (default 20000)
# latency: 2 relays at $RATE msg/s (default 5000), pairs spread: half on one
#          relay, half across, measured apart in the same run
# fanout:  2 relays, one sender to a 5,000-member group, members on both
# kill:    2 relays, 50 pairs across them at 5,000 msg/s with --reconnect;
#          relay n1 gets kill -9 $KILL_AFTER s into the run (default 10)
# single:  1 relay on PostgreSQL (no Redis), closed loop
# sqlite:  1 relay on the SQLite default, closed loop (same session, for the ratio)
# voice:   voice rooms, $ROOMS (default 10) × 50 participants × 2 speakers
#          with a chat side load: 1 relay on PostgreSQL, then 2 relays on
#          Redis, alternating RUNS times
# desk:    the support desk (not part of `all`): $VISITORS (1000) visitors
#          over $ARRIVAL (60s), $AGENTS (20) agents × capacity 5, 3 messages
#          each (agents answer after $REPLY_DELAY, default 0ms); 1 relay on
#          PostgreSQL, then 2 relays on Redis (visitors and agents alternate
#          relays), alternating RUNS times
#
# Every run gets a fresh database and fresh relays; PostgreSQL and Redis
# live for the whole script under $BENCH_DIR (default
# /tmp/ferrochat-cluster-bench). One JSON line per run, prefixed with the
# case's name, then each relay's cluster counters. Needs PostgreSQL 15 and
# Redis (`cargo xtask cluster` or `cargo xtask test` installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
runs=${2:-2}
dir=${BENCH_DIR:-/tmp/ferrochat-cluster-bench}
offered=${OFFERED:-20000}
pg_port=55500
redis_port=56500
ports=(9203 9204)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build --release -q -p ferrochat-relay -p loadgen
bin=${CARGO_TARGET_DIR:-target}/release
# relay_load_flags, wait_healthy (its stop_relay trap is replaced below).
source loadgen/bench-relay.sh
# More relay flags for a mode (desk: --visitor-limit off --visitor-message-limit off).
relay_extra=()

rm -rf "$dir"
mkdir -p "$dir/pg"
chown postgres "$dir/pg" 2>/dev/null || true
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$pgbin/initdb" -D "$dir/pg/data" -U ferrochat --auth=trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log"
as_pg "$pgbin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -o \
    "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c synchronous_commit=on -c fsync=on -c max_connections=300 -c shared_buffers=256MB" start >/dev/null
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"

pids=()
stop_relays() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
cleanup() {
    stop_relays
    kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    as_pg "$pgbin/pg_ctl" -D "$dir/pg/data" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

run=0
# start_relays N DB [--redis]: N fresh relays on a fresh database.
start_relays() {
    local n=$1 db=$2 redis=${3:-} i
    stop_relays
    run=$((run + 1))
    if [[ $db == postgres ]]; then
        psql -q -h 127.0.0.1 -p "$pg_port" -U ferrochat -d postgres -c "CREATE DATABASE bench$run"
        db="postgres://ferrochat@127.0.0.1:$pg_port/bench$run"
        redis-cli -p "$redis_port" flushall >/dev/null
    else
        rm -f "$dir"/bench.db*
    fi
    urls=()
    for i in $(seq 0 $((n - 1))); do
        local extra=()
        if [ -n "$redis" ]; then
            extra=(--redis "redis://127.0.0.1:$redis_port" --node-id "n$i")
        fi
        "$bin/ferrochat-relay" --listen "127.0.0.1:${ports[$i]}" --db "$db" "${extra[@]}" \
            "${relay_load_flags[@]}" "${relay_extra[@]}" >>"$dir/relay$i.log" 2>&1 &
        pids+=($!)
        urls+=("http://127.0.0.1:${ports[$i]}")
    done
    db_url=$db
    for u in "${urls[@]}"; do wait_healthy "$u"; done
}

# counters: what each relay's link did during the run.
counters() {
    for u in "${urls[@]}"; do
        printf '  %s:' "$u"
        curl -s "$u/metrics" | grep -E '^ferrochat_(cluster_(published|publish_dropped|received|recovered|backpressure|voice_(published|dropped|received))|audio_frames_(in|out|dropped)|store_(commits|ops|commit_micros))_total' |
            sed 's/ferrochat_//;s/cluster_//;s/_total//' | tr '\n' ' '
        echo
    done
}

# case NAME RELAYS DB REDIS [SCENARIO] -- LOADGEN SCENARIO ARGS...
case_() {
    local name=$1 n=$2 db=$3 redis=$4 scenario=chat
    shift 4
    if [ "$1" != -- ]; then scenario=$1; shift; fi
    shift
    for i in $(seq "$runs"); do
        start_relays "$n" "$db" "$redis"
        printf '%s run %s: ' "$name" "$i"
        local joined
        joined=$(IFS=,; echo "${urls[*]}")
        "$bin/loadgen" --url "$joined" --relay-pid "$(IFS=,; echo "${pids[*]}")" --quiet --json "$scenario" "$@" || true
        counters
    done
    stop_relays
}

case $what in
sqlite | all)
    case_ sqlite 1 "sqlite://$dir/bench.db" "" -- --pairs 100 --window 64 --duration 15s
    ;;&
single | all)
    case_ pg-single 1 postgres "" -- --pairs 100 --window 64 --duration 15s
    ;;&
closed | all)
    case_ cluster-closed 2 postgres redis -- --placement cross --pairs 100 --window 64 --duration 15s
    ;;&
offered | all)
    case_ "cluster-offered-$offered" 2 postgres redis -- --placement cross --pairs 100 --rate "$offered" --duration 15s
    ;;&
pglatency)
    case_ "pg-single-${RATE:-5000}" 1 postgres "" -- --pairs 100 --rate "${RATE:-5000}" --duration 15s
    ;;
fanout | all)
    case_ fanout-5000 2 postgres redis fanout -- --members 5000 --messages 20
    ;;&
kill | all)
    for i in $(seq "$runs"); do
        start_relays 2 postgres redis
        printf 'kill run %s: ' "$i"
        "$bin/loadgen" --url "$(IFS=,; echo "${urls[*]}")" --quiet --json \
            chat --placement cross --reconnect --pairs 50 --rate 5000 --duration 20s &
        lg=$!
        sleep "${KILL_AFTER:-10}"
        kill -9 "${pids[1]}"
        wait "$lg" || true
        pids=("${pids[0]}")
        urls=("${urls[0]}")
        counters
    done
    stop_relays
    ;;&
latency | all)
    case_ "latency-${RATE:-5000}-spread" 2 postgres redis -- --placement spread --pairs 100 --rate "${RATE:-5000}" --duration 15s
    ;;&
voice | all)
    # Voice rooms (issue 14): ROOMS (default 10) × 50 participants × 2
    # speakers with a chat side load, on one relay on PostgreSQL and on two
    # relays linked by Redis (participants alternate relays, so most pairs
    # cross), alternating.
    for i in $(seq "$runs"); do
        for n in 1 2; do
            name=voice-${ROOMS:-10}-pg-single redis=""
            if [ "$n" = 2 ]; then name=voice-${ROOMS:-10}-2nodes redis=redis; fi
            runs=1 case_ "$name" "$n" postgres "$redis" voice -- --rooms "${ROOMS:-10}" \
                --participants 50 --speakers 2 --chat-pairs 50 --chat-rate 500 --duration 20s
        done
    done
    ;;
desk)
    # The support desk: the agents are granted with the relay's admin
    # command, which on PostgreSQL writes to the database directly.
    relay_extra=(--visitor-limit off --visitor-message-limit off)
    for i in $(seq "$runs"); do
        for n in 1 2; do
            name=desk-pg-single redis=""
            if [ "$n" = 2 ]; then name=desk-2nodes redis=redis; fi
            start_relays "$n" postgres "$redis"
            printf '%s run %s: ' "$name" "$i"
            "$bin/loadgen" --url "$(IFS=,; echo "${urls[*]}")" --relay-pid "$(IFS=,; echo "${pids[*]}")" \
                --quiet --json desk --visitors "${VISITORS:-1000}" --arrival "${ARRIVAL:-60s}" \
                --agents "${AGENTS:-20}" --capacity 5 --messages 3 --reply-delay "${REPLY_DELAY:-0ms}" \
                --relay-bin "$bin/ferrochat-relay" --db "$db_url" || true
            counters
        done
    done
    stop_relays
    ;;
esac
