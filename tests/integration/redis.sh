#!/bin/bash
# redis-server under $RUNNER: redis-benchmark's default test set, redis-cli
# round trips checked by value, and (under the launcher) proof of io_uring,
# RINGPOLL_STATS=1 counters and RINGPOLL_DISABLE=1 pass-through.
IT_NAME=redis
. "$(dirname "$0")/lib.sh"
M=$(mode_label)
N_BENCH=${REDIS_BENCH_N:-20000}

start_redis() {  # TAG [ENV=VAL...]
    local tag=$1; shift
    PORT=$(pick_port) || { not_ok "$M: pick a free port"; done_testing; }
    start_server "$tag" "$@" -- redis-server --save '' --appendonly no --port "$PORT" \
        --bind 127.0.0.1 --daemonize no --dir "$TMPD" --logfile ''
    if wait_port "$PORT"; then
        ok "$M: $tag: redis-server listens on 127.0.0.1:$PORT"
    else
        not_ok "$M: $tag: redis-server listens on 127.0.0.1:$PORT"
        tail -n 30 "$TMPD/$tag.out" "$TMPD/$tag.err" | diag
        return 1
    fi
}

cli() { timeout 10 redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

roundtrips() {  # COUNT: SET/GET/DEL checked by value
    local n=$1 i v got
    # a few single commands with awkward values
    for v in "hello" "with spaces and\ttabs" "$(head -c 3000 /dev/urandom | base64 -w0)"; do
        [ "$(cli SET rk "$v")" = OK ] || { echo "SET failed"; return 1; }
        got=$(cli --raw GET rk)
        [ "$got" = "$v" ] || { echo "GET rk: got '${got:0:60}' want '${v:0:60}'"; return 1; }
        [ "$(cli DEL rk)" = 1 ] || { echo "DEL rk != 1"; return 1; }
        [ -z "$(cli --raw GET rk)" ] || { echo "GET after DEL not empty"; return 1; }
    done
    # a batch of COUNT keys through one connection
    {
        for i in $(seq 1 "$n"); do echo "SET key:$i val-$i-$((i * 7919 % 10007))"; done
        for i in $(seq 1 "$n"); do echo "GET key:$i"; done
        for i in $(seq 1 "$n"); do echo "DEL key:$i"; done
        for i in $(seq 1 "$n"); do echo "EXISTS key:$i"; done
    } | timeout 20 redis-cli -h 127.0.0.1 -p "$PORT" >"$TMPD/batch.out" || { echo "batch redis-cli failed"; return 1; }
    {
        for i in $(seq 1 "$n"); do echo "OK"; done
        for i in $(seq 1 "$n"); do echo "val-$i-$((i * 7919 % 10007))"; done
        for i in $(seq 1 "$n"); do echo "1"; done
        for i in $(seq 1 "$n"); do echo "0"; done
    } >"$TMPD/batch.want"
    if ! cmp -s "$TMPD/batch.out" "$TMPD/batch.want"; then
        echo "batch replies differ:"; diff "$TMPD/batch.want" "$TMPD/batch.out" | head -n 20
        return 1
    fi
    echo "$((n * 4 + 12)) commands checked"
}

bench() {  # N [extra args]
    local n=$1; shift
    timeout 60 redis-benchmark -h 127.0.0.1 -p "$PORT" -n "$n" -q "$@" >"$TMPD/bench.out" 2>&1
    local rc=$?
    tr '\r' '\n' <"$TMPD/bench.out" | grep -v '^ *$' | grep -v 'rps=' | tail -n 25
    [ $rc -eq 0 ] || { echo "redis-benchmark exit status $rc"; return 1; }
    if grep -q "ERR" "$TMPD/bench.out"; then echo "ERR in output"; return 1; fi
    local nres
    nres=$(tr '\r' '\n' <"$TMPD/bench.out" | grep -c "requests per second")
    [ "$nres" -ge 1 ] || { echo "no results"; return 1; }
}

stopped_clean() {  # TAG: stop with SIGTERM; exit status 0
    stop_server TERM
    local rc=$?
    echo "exit status $rc"; tail -n 5 "$TMPD/$1.err"
    [ $rc -eq 0 ]
}

# 1. the server under $RUNNER (or natively)
if start_redis main; then
    check "$M: redis-server on $( [ -n "$RUNNER" ] && echo io_uring || echo kernel epoll)" expect_backend "$SRV_PID"
    check "$M: redis-cli SET/GET/DEL round trips" roundtrips 200
    check "$M: redis-benchmark -n $N_BENCH default tests, no errors" bench "$N_BENCH"
    check "$M: redis-cli round trips after benchmark" roundtrips 50
    check "$M: redis-server exits cleanly on SIGTERM" stopped_clean main
fi

if [ -n "$RUNNER" ]; then
    # 2. counters at exit
    if start_redis stats RINGPOLL_STATS=1; then
        check "$M: stats run: round trips" roundtrips 50
        check "$M: stats run: exits cleanly" stopped_clean stats
        check "$M: RINGPOLL_STATS=1 prints counters at exit" expect_stats "$TMPD/stats.err"
    fi
    # 3. pass-through
    if start_redis disable RINGPOLL_DISABLE=1; then
        check "$M: RINGPOLL_DISABLE=1: redis-server on kernel epoll" expect_epoll "$SRV_PID"
        check "$M: RINGPOLL_DISABLE=1: round trips" roundtrips 50
        check "$M: RINGPOLL_DISABLE=1: redis-benchmark -t set,get" bench 2000 -t set,get
        check "$M: RINGPOLL_DISABLE=1: exits cleanly" stopped_clean disable
    fi
fi

done_testing
