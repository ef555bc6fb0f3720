#!/bin/bash
# nginx (master + 2 forked workers, epoll) under $RUNNER: static files of 0 B
# to 5 MiB checked by sha256 with curl (one by one, on one keep-alive
# connection, 8 at once, a byte range), wrk load with no errors, each with
# sendfile on and off (off: nginx writes the bodies itself), and (under the
# launcher) proof that the workers run on io_uring, RINGPOLL_STATS=1
# counters and RINGPOLL_DISABLE=1 pass-through; in the completion mode, that
# the mode took the workers' sockets (check_cs).
IT_NAME=nginx
. "$(dirname "$0")/lib.sh"
M=$(mode_label)
WRK_SECS=${NGINX_WRK_SECS:-3}

mkdir -p "$TMPD/www"
# 64 KiB of a known byte pattern, random files of 1 B, 1 MiB and 5 MiB, an
# empty one; their sha256 sums kept to check every body against
"$PYTHON" -c 'import sys; sys.stdout.buffer.write(bytes((i * 31 + (i >> 8)) % 251 for i in range(65536)))' >"$TMPD/www/f64k.bin"
head -c 1 /dev/urandom >"$TMPD/www/f1b.bin"
head -c 1048576 /dev/urandom >"$TMPD/www/f1m.bin"
head -c 5242880 /dev/urandom >"$TMPD/www/f5m.bin"
: >"$TMPD/www/f0.bin"
printf 'hello from nginx\n' >"$TMPD/www/index.html"
FILES="f0.bin f1b.bin f64k.bin f1m.bin f5m.bin index.html"
declare -A SUM
for f in $FILES; do SUM[$f]=$(sha256sum <"$TMPD/www/$f" | cut -d' ' -f1); done

write_conf() {  # PORT TAG [SENDFILE: on|off]
    {
        [ "$(id -u)" -eq 0 ] && echo "user root;"
        cat <<EOF
worker_processes 2;
master_process on;
daemon off;
pid $TMPD/nginx.pid;
error_log $TMPD/error.$2.log warn;
events {
    use epoll;
    worker_connections 512;
}
http {
    access_log off;
    default_type application/octet-stream;
    sendfile ${3:-on};
    keepalive_requests 100000;
    client_body_temp_path $TMPD/tmp-body;
    proxy_temp_path $TMPD/tmp-proxy;
    fastcgi_temp_path $TMPD/tmp-fastcgi;
    uwsgi_temp_path $TMPD/tmp-uwsgi;
    scgi_temp_path $TMPD/tmp-scgi;
    server {
        listen 127.0.0.1:$1;
        root $TMPD/www;
        location / { }
    }
}
EOF
    } >"$TMPD/nginx.conf"
}

WORKERS=""
start_nginx() {  # TAG [ENV=VAL...]   (SENDFILE=off in the environment: off)
    local tag=$1; shift
    PORT=$(pick_port) || { not_ok "$M: pick a free port"; done_testing; }
    write_conf "$PORT" "$tag" "${SENDFILE:-on}"
    ERRLOG=$TMPD/error.$tag.log
    start_server "$tag" "$@" -- nginx -p "$TMPD" -c "$TMPD/nginx.conf" -e "$ERRLOG"
    if ! wait_port "$PORT"; then
        not_ok "$M: $tag: nginx listens on 127.0.0.1:$PORT"
        tail -n 30 "$TMPD/$tag.err" "$ERRLOG" 2>/dev/null | diag
        return 1
    fi
    local i
    for i in $(seq 1 100); do
        WORKERS=$(pgrep -P "$SRV_PID" | xargs)
        [ "$(echo $WORKERS | wc -w)" -ge 2 ] && break
        sleep 0.05
    done
    if [ "$(echo $WORKERS | wc -w)" -eq 2 ]; then
        ok "$M: $tag: nginx master $SRV_PID with 2 workers ($WORKERS) on 127.0.0.1:$PORT"
    else
        not_ok "$M: $tag: nginx master $SRV_PID with 2 workers (got: $WORKERS)"
        return 1
    fi
    # give the workers a moment to finish their event module init
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/index.html"
}

same_sum() {  # FILE NAME: FILE's sha256 is NAME's in www/
    local got
    got=$(sha256sum <"$1" | cut -d' ' -f1)
    [ "$got" = "${SUM[$2]}" ] && return 0
    echo "$2: sha256 $got ($(stat -c %s "$1") bytes), want ${SUM[$2]} ($(stat -c %s "$TMPD/www/$2") bytes)"
    [ -s "$1" ] && cmp "$1" "$TMPD/www/$2" | head -n 1
    return 1
}

fetch_cmp() {  # every body checked by sha256: alone, keep-alive, 8 at once, a range
    local f rc=0 i args=() pids=()
    for f in $FILES; do
        rm -f "$TMPD/got"
        timeout 15 curl -sS --fail --max-time 10 -o "$TMPD/got" "http://127.0.0.1:$PORT/$f" || { echo "curl $f failed"; rc=1; continue; }
        same_sum "$TMPD/got" "$f" || rc=1
    done
    # 20 requests on one connection (keep-alive), each body checked
    for i in $(seq 1 20); do args+=("http://127.0.0.1:$PORT/f64k.bin" -o "$TMPD/ka.$i"); done
    timeout 20 curl -sS --fail --max-time 15 "${args[@]}" || { echo "keep-alive curl failed"; rc=1; }
    for i in $(seq 1 20); do same_sum "$TMPD/ka.$i" f64k.bin || rc=1; done
    rm -f "$TMPD"/ka.*
    # every file twice on one connection, the sizes mixed
    args=()
    # shellcheck disable=SC2206
    local names=($FILES $FILES)
    for i in "${!names[@]}"; do args+=("http://127.0.0.1:$PORT/${names[$i]}" -o "$TMPD/mix.$i"); done
    timeout 20 curl -sS --fail --max-time 15 "${args[@]}" || { echo "mixed keep-alive curl failed"; rc=1; }
    for i in "${!names[@]}"; do same_sum "$TMPD/mix.$i" "${names[$i]}" || rc=1; done
    rm -f "$TMPD"/mix.*
    # 8 connections at once, each 5 MiB
    for i in $(seq 1 8); do
        timeout 20 curl -sS --fail --max-time 15 -o "$TMPD/par.$i" "http://127.0.0.1:$PORT/f5m.bin" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || { echo "a parallel curl failed"; rc=1; }; done
    for i in $(seq 1 8); do same_sum "$TMPD/par.$i" f5m.bin || rc=1; done
    rm -f "$TMPD"/par.*
    # a byte range from the middle of the 5 MiB file
    timeout 15 curl -sS --fail --max-time 10 -r 1000001-3000000 -o "$TMPD/range" "http://127.0.0.1:$PORT/f5m.bin" || { echo "range curl failed"; rc=1; }
    tail -c +1000002 "$TMPD/www/f5m.bin" | head -c 2000000 | cmp - "$TMPD/range" || { echo "range 1000001-3000000 differs"; rc=1; }
    # a 404 is a 404
    local code
    code=$(timeout 10 curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PORT/missing")
    [ "$code" = 404 ] || { echo "missing file: HTTP $code"; rc=1; }
    [ $rc -eq 0 ] && echo "6 files alone, 20 + 12 keep-alive bodies, 8 x 5 MiB at once, a range and a 404 checked"
    return $rc
}

run_wrk() {  # SECONDS [FILE]
    timeout $(($1 + 20)) wrk -t2 -c32 -d"$1"s --timeout 5s "http://127.0.0.1:$PORT/${2:-f64k.bin}" >"$TMPD/wrk.out" 2>&1
    local rc=$?
    cat "$TMPD/wrk.out"
    [ $rc -eq 0 ] || { echo "wrk exit status $rc"; return 1; }
    grep -q "Socket errors" "$TMPD/wrk.out" && { echo "socket errors"; return 1; }
    grep -q "Non-2xx" "$TMPD/wrk.out" && { echo "non-2xx responses"; return 1; }
    local n
    n=$(awk '/requests in/ { print $1 }' "$TMPD/wrk.out")
    [ "${n:-0}" -gt 0 ] || { echo "no requests completed"; return 1; }
}

workers_alive() {  # the same workers still serve (none crashed and respawned)
    local now
    now=$(pgrep -P "$SRV_PID" | xargs)
    echo "workers before: $WORKERS after: $now"
    [ "$now" = "$WORKERS" ] || return 1
    ! grep -E "exited on signal|\[alert\]|\[crit\]|\[emerg\]" "$ERRLOG"
}

stopped_clean() {  # TAG: SIGQUIT (graceful); exit status 0
    stop_server QUIT
    local rc=$?
    echo "exit status $rc"; tail -n 5 "$TMPD/$1.err"
    [ $rc -eq 0 ]
}

master_no_eventpoll() {
    local k
    k=$(fd_kinds "$SRV_PID"); echo "master $SRV_PID: io_uring=${k% *} eventpoll=${k#* }"
    [ "${k#* }" -eq 0 ]
}

backend() { if [ -n "$RUNNER" ]; then echo io_uring; else echo kernel epoll; fi; }

# 1. the server under $RUNNER (or natively)
if start_nginx main; then
    # shellcheck disable=SC2086
    check "$M: nginx workers on $(backend)" expect_backend $WORKERS
    [ -n "$RUNNER" ] && check "$M: nginx master has no eventpoll fd" master_no_eventpoll
    check "$M: curl bodies byte for byte" fetch_cmp
    check "$M: wrk -t2 -c32 -d${WRK_SECS}s, no errors, no non-2xx" run_wrk "$WRK_SECS"
    check "$M: wrk -t2 -c32 -d2s of 1-byte bodies, no errors, no non-2xx" run_wrk 2 f1b.bin
    check "$M: curl bodies byte for byte after load" fetch_cmp
    check "$M: workers survived, no alerts in error.log" workers_alive
    check "$M: nginx exits cleanly on SIGQUIT" stopped_clean main
    # the workers' lines are in the error log (their stderr)
    check_cs "$M: the completion mode took the workers' sockets" "$TMPD/main.err" "$ERRLOG"
fi

# 2. sendfile off: the workers write every body with write/writev themselves
if SENDFILE=off start_nginx nosendfile; then
    check "$M: sendfile off: curl bodies byte for byte" fetch_cmp
    check "$M: sendfile off: wrk -t2 -c32 -d2s, no errors, no non-2xx" run_wrk 2
    check "$M: sendfile off: curl bodies byte for byte after load" fetch_cmp
    check "$M: sendfile off: workers survived, no alerts in error.log" workers_alive
    check "$M: sendfile off: nginx exits cleanly on SIGQUIT" stopped_clean nosendfile
    check_cs "$M: sendfile off: the completion mode took the workers' sockets" "$TMPD/nosendfile.err" "$ERRLOG"
fi

if [ -n "$RUNNER" ]; then
    if start_nginx stats RINGPOLL_STATS=1; then
        check "$M: stats run: curl bodies" fetch_cmp
        check "$M: stats run: exits cleanly" stopped_clean stats
        # nginx points its stderr at the error log once it has read its config
        cat "$TMPD/stats.err" "$ERRLOG" >"$TMPD/stats.all"
        check "$M: RINGPOLL_STATS=1 prints counters at exit" expect_stats "$TMPD/stats.all"
    fi
    if start_nginx disable RINGPOLL_DISABLE=1; then
        # shellcheck disable=SC2086
        check "$M: RINGPOLL_DISABLE=1: workers on kernel epoll" expect_epoll $WORKERS
        check "$M: RINGPOLL_DISABLE=1: curl bodies" fetch_cmp
        check "$M: RINGPOLL_DISABLE=1: wrk -d1s no errors" run_wrk 1
        check "$M: RINGPOLL_DISABLE=1: exits cleanly" stopped_clean disable
    fi
fi

done_testing
