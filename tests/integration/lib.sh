# Shared helpers for the integration tests; sourced by each test (bash).
#
# Environment:
#   RUNNER   empty: run the server natively (control); otherwise a launcher
#            such as "$PWD/build/ringpoll-run" that is put before the server
#            command.  With a launcher the tests also prove the server ran on
#            io_uring, and run it once more with RINGPOLL_STATS=1 and once
#            with RINGPOLL_DISABLE=1.
#   IT_MODE  native, shim or completion (default: native without RUNNER,
#            shim with it).  completion: the launcher runs the server with
#            RINGPOLL_COMPLETION=1 (issue 15's transparent completion) and
#            RINGPOLL_STATS=1, and the test looks for cs_sockets=N in the
#            ringpoll-stats lines at exit (check_cs).
#   IT_CS_REQUIRE=1  (default) under completion, cs_sockets must be > 0 (the mode
#            took sockets); 0: a run without it is a "skip:".
#   KEEP=1   keep the temp dir under build/integration/ even on success.
#   TEST_TIME_LIMIT  seconds before the whole test script is stopped (90).

set -u

IT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUNNER=${RUNNER:-}
IT_MODE=${IT_MODE:-}
if [ -z "$IT_MODE" ]; then
    if [ -n "$RUNNER" ]; then IT_MODE=shim; else IT_MODE=native; fi
fi
IT_CS_REQUIRE=${IT_CS_REQUIRE:-1}
if [ "$IT_MODE" = completion ]; then
    [ -n "$RUNNER" ] || { echo "IT_MODE=completion needs RUNNER (the launcher)" >&2; exit 2; }
    # The variable, not the launcher's --completion: the same either way,
    # and it works with a launcher that predates the option.
    RUNNER="env RINGPOLL_COMPLETION=1 $RUNNER"
fi
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi

_tap_n=0
exec 9>&1          # the TAP stream, even from traps run inside redirected checks
_tap_fail=0
_srv_tpids=()      # pids of timeout(1) wrappers, each a process-group leader
_watchdog=""

mkdir -p "$IT_ROOT/build/integration"
TMPD=$(mktemp -d "$IT_ROOT/build/integration/${IT_NAME:-test}.XXXXXX")

ok()      { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
not_ok()  { _tap_n=$((_tap_n + 1)); _tap_fail=$((_tap_fail + 1)); echo "not ok $_tap_n - $*"; }
diag()    { sed 's/^/# /'; }
# check NAME CMD...: run CMD, ok/not ok by its status; CMD's output goes to
# $TMPD/check.N.log, shown as diagnostics on failure.
check() {
    local name=$1; shift
    local log="$TMPD/check.$((_tap_n + 1)).log"
    if "$@" >"$log" 2>&1; then ok "$name"; return 0; fi
    not_ok "$name"; diag <"$log" | tail -n 40; return 1
}

mode_label() { echo "$IT_MODE"; }

# pick_port: a free TCP port below the ephemeral range, not listened on.
pick_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] &&
           [ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ]; then
            echo "$p"; return 0
        fi
    done
    return 1
}

# start_server TAG [VAR=VAL...] -- CMD...: start CMD under $RUNNER with the
# extra environment, bounded by timeout(1); sets SRV_TPID (timeout's pid,
# which is also the process group) and SRV_PID (the server itself).
# stdout/stderr go to $TMPD/TAG.out / .err.
start_server() {
    local tag=$1; shift
    local envs=()
    # the counters at exit say whether the completion mode took sockets
    [ "$IT_MODE" = completion ] && envs+=(RINGPOLL_STATS=1)
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    # shellcheck disable=SC2086
    timeout -k 5 "${SERVER_TIME_LIMIT:-80}" env "${envs[@]}" $RUNNER "$@" \
        >"$TMPD/$tag.out" 2>"$TMPD/$tag.err" </dev/null 9>&- &
    SRV_TPID=$!
    _srv_tpids+=("$SRV_TPID")
    SRV_PID=""
    local i
    for i in $(seq 1 100); do
        SRV_PID=$(pgrep -P "$SRV_TPID" | head -n1)
        [ -n "$SRV_PID" ] && break
        sleep 0.05
    done
    # the launcher execs the server: wait until the pid runs the server image
    # (not the launcher any more) so /proc/PID/fd shows the server's fds
    local want
    want=$(basename "$1")
    for i in $(seq 1 100); do
        [ -n "$SRV_PID" ] || break
        [ "$(cat "/proc/$SRV_PID/comm" 2>/dev/null)" = "${want:0:15}" ] && break
        sleep 0.05
    done
}

# wait_port PORT: wait until 127.0.0.1:PORT accepts, while SRV_TPID lives.
wait_port() {
    local port=$1 i
    for i in $(seq 1 200); do
        if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
            return 0
        fi
        kill -0 "$SRV_TPID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# stop_server [SIGNAL]: ask the server to exit (default TERM) and wait for it
# (bounded); returns the server's exit status.
stop_server() {
    local sig=${1:-TERM} i rc
    [ -n "${SRV_PID:-}" ] && kill -"$sig" "$SRV_PID" 2>/dev/null
    for i in $(seq 1 100); do
        kill -0 "$SRV_TPID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$SRV_TPID" 2>/dev/null; then
        kill -KILL -- "-$SRV_TPID" 2>/dev/null
    fi
    wait "$SRV_TPID" 2>/dev/null
    rc=$?
    return $rc
}

# fd_kinds PID: prints "IO_URING EVENTPOLL" counts of anon inode fds.
fd_kinds() {
    local pid=$1 f l u=0 e=0
    for f in /proc/"$pid"/fd/*; do
        l=$(readlink "$f" 2>/dev/null) || continue
        case $l in
            "anon_inode:[io_uring]") u=$((u + 1)) ;;
            "anon_inode:[eventpoll]") e=$((e + 1)) ;;
        esac
    done
    echo "$u $e"
}

# expect_ring PID...: every pid has >= 1 io_uring fd and no eventpoll fd.
expect_ring() {
    local pid k rc=0
    for pid in "$@"; do
        k=$(fd_kinds "$pid")
        echo "pid $pid ($(cat /proc/"$pid"/comm 2>/dev/null)): io_uring=${k% *} eventpoll=${k#* }"
        [ "${k% *}" -ge 1 ] && [ "${k#* }" -eq 0 ] || rc=1
    done
    [ $rc -eq 0 ] || ls -l /proc/"$1"/fd/ 2>&1
    return $rc
}

# expect_epoll PID...: every pid has >= 1 eventpoll fd and no io_uring fd.
expect_epoll() {
    local pid k rc=0
    for pid in "$@"; do
        k=$(fd_kinds "$pid")
        echo "pid $pid ($(cat /proc/"$pid"/comm 2>/dev/null)): io_uring=${k% *} eventpoll=${k#* }"
        [ "${k#* }" -ge 1 ] && [ "${k% *}" -eq 0 ] || rc=1
    done
    [ $rc -eq 0 ] || ls -l /proc/"$1"/fd/ 2>&1
    return $rc
}

# expect_backend PID...: io_uring under the launcher, eventpoll natively.
expect_backend() {
    if [ -n "$RUNNER" ]; then expect_ring "$@"; else expect_epoll "$@"; fi
}

# expect_stats FILE: the stderr of a RINGPOLL_STATS=1 run has the counters.
expect_stats() {
    if grep -i ringpoll "$1" | grep -qi enters; then
        grep -i ringpoll "$1" | head -n 20
        return 0
    fi
    echo "no line with 'ringpoll' and 'enters' in $1:"; tail -n 20 "$1"
    return 1
}

# expect_cs FILE...: the ringpoll-stats lines in FILEs (one per process
# that used ringpoll) show that the completion mode took sockets: the sum of
# their cs_sockets=N is > 0.
expect_cs() {
    local lines n
    lines=$(cat "$@" 2>/dev/null | grep -ao 'ringpoll-stats .*')
    if [ -z "$lines" ]; then
        echo "no ringpoll-stats line in: $*"; tail -n 5 "$@" 2>/dev/null
        return 1
    fi
    # per process: pid, program, and the cs_ counters when there are any
    printf '%s\n' "$lines" | awk '{
        o = $2 " " $3
        for (i = 4; i <= NF; i++) if ($i ~ /^cs_/) o = o " " $i
        print o }' | head -n 20
    if ! printf '%s\n' "$lines" | grep -q ' cs_sockets='; then
        echo "cs_sockets: no such field in $(printf '%s\n' "$lines" | wc -l) ringpoll-stats lines"
        return 1
    fi
    n=$(printf '%s\n' "$lines" | grep -o ' cs_sockets=[0-9]*' |
        awk -F= '{ s += $2 } END { print s + 0 }')
    echo "cs_sockets: $n in all"
    [ "$n" -gt 0 ]
}

# check_cs NAME FILE...: under the completion mode only, expect_cs FILE...
# as a check; with IT_CS_REQUIRE=0 a miss is a "skip:" line, not a failure
# (until the mode's core is in the tree).
check_cs() {
    [ "$IT_MODE" = completion ] || return 0
    local name=$1; shift
    if [ "$IT_CS_REQUIRE" = 1 ]; then
        check "$name" expect_cs "$@"
        return
    fi
    local log="$TMPD/check_cs.$_tap_n.log"
    if expect_cs "$@" >"$log" 2>&1; then
        ok "$name"
    else
        echo "skip: integration-${IT_NAME:-test}: $name: $(tail -n 1 "$log") (IT_CS_REQUIRE=0)"
    fi
}

_it_cleanup() {
    local t
    for t in "${_srv_tpids[@]}"; do
        if kill -0 "$t" 2>/dev/null; then
            kill -TERM -- "-$t" 2>/dev/null
        fi
    done
    for t in "${_srv_tpids[@]}"; do
        local i
        for i in $(seq 1 40); do kill -0 "$t" 2>/dev/null || break; sleep 0.05; done
        kill -KILL -- "-$t" 2>/dev/null
        wait "$t" 2>/dev/null
    done
    [ -n "$_watchdog" ] && kill "$_watchdog" 2>/dev/null && wait "$_watchdog" 2>/dev/null
    if [ "$_tap_fail" -eq 0 ] && [ "${KEEP:-0}" != 1 ]; then
        rm -rf "$TMPD"
    else
        echo "# files kept in $TMPD" >&9
    fi
}
trap '_it_cleanup' EXIT
trap 'not_ok "${IT_NAME:-test}: interrupted (signal or time limit)" >&9; echo "1..$_tap_n" >&9; exit 124' INT TERM HUP
# bound the whole script in time
(
    trap 'kill "$_sp" 2>/dev/null; exit 0' TERM
    sleep "${TEST_TIME_LIMIT:-90}" & _sp=$!
    wait "$_sp" && { echo "# ${IT_NAME:-test}: time limit of ${TEST_TIME_LIMIT:-90}s reached" >&9; kill -TERM $$; }
) 2>/dev/null 9>&1 &
_watchdog=$!

# done_testing: print the plan and exit non-zero on any failure.
done_testing() {
    echo "1..$_tap_n"
    [ "$_tap_fail" -eq 0 ]
    exit $?
}
