#!/bin/bash
# PostgreSQL (the postmaster forks a backend per connection; the backends and
# the auxiliary processes wait on epoll) under $RUNNER, as an unprivileged
# user (postgres, or nobody) on 127.0.0.1 with a data dir of its own made by
# initdb: rows of random bytes up to 2 MiB through COPY in and out checked
# byte for byte, the server's md5 of them checked against the client's;
# pgbench -i, then TPC-B-like transactions, select-only prepared and a
# pipelined script, all with bounded counts, every transaction counted and
# the balances adding up; under the launcher also proof of io_uring,
# RINGPOLL_STATS=1 counters and RINGPOLL_DISABLE=1 pass-through; in the
# completion mode, that the mode took the backends' sockets (check_cs).
IT_NAME=postgres
. "$(dirname "$0")/lib.sh"
M=$(mode_label)

PGBIN=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && { PGBIN=$d; break; }
done
if [ -z "$PGBIN" ] && command -v pg_config >/dev/null 2>&1; then
    PGBIN=$(pg_config --bindir)
fi
if [ ! -x "$PGBIN/postgres" ] || [ ! -x "$PGBIN/initdb" ]; then
    echo "skip: integration-postgres: no postgres and initdb (/usr/lib/postgresql/*/bin)"
    done_testing
fi

# postgres refuses to run as root: as root, the server (and initdb) run as
# the postgres user (or nobody) through setpriv, before the launcher
AS=""
PGD=$TMPD/pg
mkdir -p "$PGD"
if [ "$(id -u)" -eq 0 ]; then
    u=postgres
    id "$u" >/dev/null 2>&1 || u=nobody
    AS="setpriv --reuid=$(id -u "$u") --regid=$(id -g "$u") --clear-groups"
    chmod 711 "$TMPD"
    chown "$u" "$PGD"
    # A tree under a directory closed to others (a clone in mktemp -d's
    # 0700 directory, say): the data dir, the launcher and the library
    # are staged in a directory of their own that $u can reach; the
    # launcher finds the library beside itself.
    # shellcheck disable=SC2086
    if ! $AS test -w "$PGD" ||
            { [ -n "$RUNNER" ] && ! $AS test -r "$IT_ROOT/build/libringpoll-preload.so"; }; then
        STAGE=$(mktemp -d /tmp/ringpoll-pg.XXXXXX) ||
            { not_ok "$M: a directory $u can reach"; done_testing; }
        trap '_it_cleanup; rm -rf "$STAGE"' EXIT
        chmod 755 "$STAGE"
        if [ -n "$RUNNER" ]; then
            cp "$IT_ROOT/build/ringpoll-run" "$IT_ROOT/build/libringpoll-preload.so" "$STAGE/" ||
                { not_ok "$M: stage the launcher where $u can reach it"; done_testing; }
        fi
        RUNNER=${RUNNER//"$IT_ROOT/build/ringpoll-run"/"$STAGE/ringpoll-run"}
        PGD=$STAGE/pg
        mkdir -p "$PGD" && chown "$u" "$PGD"
        # shellcheck disable=SC2086
        if ! $AS test -w "$PGD"; then
            echo "skip: integration-postgres: user $u cannot reach $STAGE either"
            done_testing
        fi
    fi
fi
mkdir -p "$PGD/sock"
[ -n "$AS" ] && chown "$u" "$PGD/sock"

# shellcheck disable=SC2086
check "$M: initdb" $AS "$PGBIN/initdb" -D "$PGD/data" -A trust -U postgres \
    --no-sync -E UTF8 --locale=C || done_testing

start_pg() {  # TAG [ENV=VAL...]
    local tag=$1; shift
    PORT=$(pick_port) || { not_ok "$M: pick a free port"; done_testing; }
    # setpriv before the launcher, so start_server still waits for postgres
    local RUNNER="$AS $RUNNER"
    start_server "$tag" "$@" -- "$PGBIN/postgres" -D "$PGD/data" \
        -c listen_addresses=127.0.0.1 -p "$PORT" -k "$PGD/sock" \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_connections=40 -c shared_buffers=32MB
    if wait_port "$PORT"; then
        ok "$M: $tag: postgres listens on 127.0.0.1:$PORT"
    else
        not_ok "$M: $tag: postgres listens on 127.0.0.1:$PORT"
        tail -n 30 "$TMPD/$tag.out" "$TMPD/$tag.err" | diag
        return 1
    fi
}

PSQL() { timeout 30 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"; }
PGBENCH() { timeout 60 pgbench -h 127.0.0.1 -p "$PORT" -U postgres "$@" postgres; }

# aux_pids: the postmaster's auxiliary processes (checkpointer, walwriter,
# ...: each waits on epoll; the postmaster itself uses select(2) in
# PostgreSQL 15), once at least 4 run and each has made its wait set; not
# the backends, which come and go (wait_port's connection forks one)
aux_pids() {
    local i p k pids n ready
    for i in $(seq 1 100); do
        pids=""; n=0; ready=1
        for p in $(pgrep -P "$SRV_PID"); do
            tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null |
                grep -Eq '^postgres: (checkpointer|background writer|walwriter|autovacuum launcher|logical replication launcher)' ||
                continue
            pids="$pids $p"; n=$((n + 1))
            k=$(fd_kinds "$p")
            [ $((${k% *} + ${k#* })) -ge 1 ] || ready=0
        done
        [ "$n" -ge 4 ] && [ "$ready" = 1 ] && break
        sleep 0.05
    done
    echo $pids
}

# rows.py N FILE: N rows "id<TAB>hex of random bytes", sizes 0 B to 2 MiB;
# prints the md5 of the hex strings concatenated in id order
cat >"$TMPD/rows.py" <<'EOF'
import hashlib, os, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(n)
h = hashlib.md5()
with open(path, "w") as f:
    for i in range(n):
        size = rnd.choice([0, rnd.randint(1, 100), rnd.randint(100, 8192)]) \
            if rnd.random() < 0.95 else rnd.choice([65536, rnd.randint(65536, 2 << 20)])
        v = os.urandom(size).hex()
        h.update(v.encode())
        f.write("%d\t%s\n" % (i, v))
print(h.hexdigest())
EOF

copy_roundtrip() {  # N: COPY N rows in and out, byte for byte; md5 on both sides
    local n=$1 want got
    want=$("$PYTHON" "$TMPD/rows.py" "$n" "$TMPD/rows.tsv") || return 1
    PSQL -c "drop table if exists t" -c "create table t (id int primary key, v text)" \
        -c "\\copy t (id, v) from '$TMPD/rows.tsv'" || { echo "COPY in failed"; return 1; }
    PSQL -c "\\copy (select id, v from t order by id) to '$TMPD/out.tsv'" || { echo "COPY out failed"; return 1; }
    cmp "$TMPD/rows.tsv" "$TMPD/out.tsv" || return 1
    got=$(PSQL -At -c "select count(*), md5(string_agg(v, '' order by id)), sum(length(decode(v, 'hex'))) from t") || return 1
    [ "${got%%|*}" = "$n" ] || { echo "count: $got, want $n rows"; return 1; }
    got=${got#*|}
    [ "${got%%|*}" = "$want" ] || { echo "server md5 ${got%%|*}, client md5 $want"; return 1; }
    echo "$n rows, $(stat -c %s "$TMPD/rows.tsv") bytes of COPY each way, ${got#*|} bytes decoded, md5 $want on both sides"
    rm -f "$TMPD/rows.tsv" "$TMPD/out.tsv"
}

bench_init() {  # SCALE
    PGBENCH -i -q -s "$1" -n 2>&1 | tail -n 3
    [ "${PIPESTATUS[0]}" -eq 0 ]
}

# bench_run TXNS ARGS...: every transaction processed, none failed
bench_run() {
    local n=$1; shift
    PGBENCH -n "$@" >"$TMPD/pgbench.out" 2>&1
    local rc=$?
    grep -E "^(number of|tps|latency average|query mode|number of clients)" "$TMPD/pgbench.out"
    [ $rc -eq 0 ] || { echo "pgbench exit status $rc"; tail -n 10 "$TMPD/pgbench.out"; return 1; }
    grep -qx "number of transactions actually processed: $n/$n" "$TMPD/pgbench.out" ||
        { echo "not $n/$n transactions"; return 1; }
    ! grep -E "^number of failed transactions: [1-9]" "$TMPD/pgbench.out"
}

balances_add_up() {  # TXNS: TPC-B: every delta went into each balance once
    local got
    got=$(PSQL -At -c "select (select count(*) from pgbench_history),
        (select sum(delta) from pgbench_history),
        (select sum(abalance) from pgbench_accounts),
        (select sum(bbalance) from pgbench_branches),
        (select sum(tbalance) from pgbench_tellers)") || return 1
    echo "history rows|sum(delta)|sum(abalance)|sum(bbalance)|sum(tbalance): $got"
    local IFS='|'
    # shellcheck disable=SC2086
    set -- $got
    [ "$1" -eq "$TXNS" ] && [ "$2" = "$3" ] && [ "$2" = "$4" ] && [ "$2" = "$5" ]
}

# a script of 10 queries in one pipeline (extended protocol, one flush)
cat >"$TMPD/pipeline.sql" <<'EOF'
\set aid random(1, 100000 * :scale)
\startpipeline
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid + 1;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid + 2;
SELECT repeat('x', 100000) AS big;
UPDATE pgbench_accounts SET abalance = abalance + 0 WHERE aid = :aid;
SELECT count(*) FROM pgbench_branches;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid + 3;
SELECT md5(repeat(:aid::text, 1000));
SELECT abalance FROM pgbench_accounts WHERE aid = :aid + 4;
SELECT 1;
\endpipeline
EOF

stopped_clean() {  # TAG: SIGINT (fast shutdown); exit status 0
    stop_server INT
    local rc=$?
    echo "exit status $rc"; tail -n 3 "$TMPD/$1.err"
    [ $rc -eq 0 ] && grep -q "database system is shut down" "$TMPD/$1.err"
}

backend_lines() {  # FILE: the stats lines of the client backends say io_uring
    local l
    # a backend's name is the end of its title, "... 127.0.0.1(PORT) idle"
    l=$(grep -ao 'ringpoll-stats .*' "$1" | grep 'prog=[^ ]*127\.0\.0\.1(')
    printf '%s\n' "$l" | cut -d' ' -f2-4 | head -n 10
    [ -n "$l" ] && ! printf '%s\n' "$l" | grep -qv 'backend=io_uring'
}

TXNS=2000
if start_pg main; then
    # shellcheck disable=SC2046
    check "$M: postgres processes on $( [ -n "$RUNNER" ] && echo io_uring || echo kernel epoll)" expect_backend $(aux_pids)
    check "$M: COPY 300 rows of 0 B to 2 MiB in and out, byte for byte, md5 both sides" copy_roundtrip 300
    check "$M: pgbench -i -s 2" bench_init 2
    check "$M: pgbench -c 8 -j 2 -t 250: $TXNS/$TXNS transactions" bench_run $TXNS -c 8 -j 2 -t 250
    check "$M: the balances add up to the $TXNS transactions' deltas" balances_add_up
    check "$M: pgbench -S -M prepared -c 16 -j 2 -t 200: 3200/3200" bench_run 3200 -S -M prepared -c 16 -j 2 -t 200
    check "$M: pgbench pipelined script -M prepared -c 4 -j 2 -t 100: 400/400" bench_run 400 -M prepared -c 4 -j 2 -t 100 -f "$TMPD/pipeline.sql"
    check "$M: COPY again after the load" copy_roundtrip 100
    check "$M: postgres exits cleanly on SIGINT" stopped_clean main
    check_cs "$M: the completion mode took the backends' sockets" "$TMPD/main.err"
fi

if [ -n "$RUNNER" ]; then
    if start_pg stats RINGPOLL_STATS=1; then
        check "$M: stats run: COPY 50 rows" copy_roundtrip 50
        check "$M: stats run: exits cleanly" stopped_clean stats
        check "$M: RINGPOLL_STATS=1 prints counters at exit" expect_stats "$TMPD/stats.err"
        check "$M: RINGPOLL_STATS=1: the client backends ran on io_uring" backend_lines "$TMPD/stats.err"
    fi
    if start_pg disable RINGPOLL_DISABLE=1; then
        # shellcheck disable=SC2046
        check "$M: RINGPOLL_DISABLE=1: postgres processes on kernel epoll" expect_epoll $(aux_pids)
        check "$M: RINGPOLL_DISABLE=1: COPY 50 rows" copy_roundtrip 50
        check "$M: RINGPOLL_DISABLE=1: pgbench -S -c 4 -t 100" bench_run 400 -S -c 4 -j 2 -t 100
        check "$M: RINGPOLL_DISABLE=1: exits cleanly" stopped_clean disable
    fi
fi

done_testing
