# Sourced by the single-relay bench scripts (bench-desk.sh, bench-voice.sh):
# one release relay on loopback, started, waited for and stopped alike.
#
#   bin=…/release            # the release directory (ferrochat-relay)
#   source loadgen/bench-relay.sh
#   start_relay_on PORT DB_URL LOG [extra relay flags…]   # sets $relay_pid
#   stop_relay
#
# Every relay gets the load-test flags (no chat rate limit, no registration
# limit, warnings only in the log); the caller adds its own. stop_relay runs
# on EXIT.

relay_pid=
relay_load_flags=(--rate-limit 1000000 --rate-burst 1000000 --register-limit off --log warn)

stop_relay() {
    if [ -n "$relay_pid" ]; then
        kill "$relay_pid" 2>/dev/null || true
        wait "$relay_pid" 2>/dev/null || true
        relay_pid=
    fi
}
trap stop_relay EXIT

# wait_healthy URL: until GET /healthz answers (10 s), or exit 2.
wait_healthy() {
    for _ in $(seq 200); do
        curl -sf "$1/healthz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "relay at $1 did not start" >&2
    exit 2
}

# start_relay_on PORT DB_URL LOG [extra flags…]: stops the previous one,
# starts a relay on 127.0.0.1:PORT appending to LOG, waits until healthy.
start_relay_on() {
    local port=$1 db=$2 log=$3
    shift 3
    stop_relay
    "$bin/ferrochat-relay" --listen "127.0.0.1:$port" --db "$db" "${relay_load_flags[@]}" "$@" \
        >>"$log" 2>&1 &
    relay_pid=$!
    wait_healthy "http://127.0.0.1:$port"
}
