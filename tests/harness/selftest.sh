#!/bin/bash
# The harness checks itself: tools/check-driver and tools/t-run on the
# stages of tests/harness/fixture.mk must count, name the failing cases,
# end on the summary line with the right exit status, stop a stage at its
# time limit, and leave no process behind (not even one that ignores
# SIGTERM in a session of its own). Usage: tests/harness/selftest.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
W=$ROOT/build/tests/harness
rm -rf "$W"
mkdir -p "$W"
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
no() { fail=$((fail + 1)); echo "not ok - $1"; }
expect() {  # NAME PATTERN FILE: FILE has a line matching PATTERN (grep -E)
	if grep -Eq -- "$2" "$3"; then ok "$1"; else no "$1"; fi
}
drive() {  # OUT STAGE:SECONDS...
	local out=$1
	shift
	env -u RINGPOLL_CHECK_TAG -u RP_CHECK_RESULTS -u RP_CHECK_STAGE \
		-u RP_CHECK_KEEP_GOING -u V CHECK_LOGS="$W/logs" \
		CHECK_MAKEFILE="$HERE/fixture.mk" MAKEFLAGS= \
		T="$ROOT/tools/t-run" timeout -k 5 120 \
		"$ROOT/tools/check-driver" "$@" > "$out" 2>&1
}
alive() {  # processes of the fixture still there
	pgrep -f 'sleep (100|300)$' | while read -r p; do
		grep -qz '^T=.*/tools/t-run$' "/proc/$p/environ" 2>/dev/null &&
			echo "$p"
	done
}

# 1. Everything passes: counts, skip, exit 0, summary last.
drive "$W/pass.out" passes:60
rc=$?
[ $rc = 0 ] && ok "passing stages: exit status 0" ||
	no "passing stages: exit status 0 (got $rc)"
[ "$(tail -n 1 "$W/pass.out")" = "8 passed, 0 failed, 1 skipped" ] &&
	ok "passing stages: the last line is '8 passed, 0 failed, 1 skipped'" ||
	no "passing stages: the last line is '8 passed, 0 failed, 1 skipped' (got '$(tail -n 1 "$W/pass.out")')"
expect "passing stages: a progress line" '^\[1/1\] passes \.\.\. ok \([0-9]+ s\)$' "$W/pass.out"
expect "passing stages: the skip with its reason" '^  skip: p_skipped: a reason$' "$W/pass.out"
[ -s "$W/logs/passes.log" ] && ok "passing stages: the stage's log" ||
	no "passing stages: the stage's log"

# 2. Failures of every kind, named; the stage's later commands still run;
# a leftover and a hang are killed; the next stage still runs.
t0=$(date +%s)
drive "$W/fail.out" fails:60 leaks:60 hangs:6 breaks:60 passes:60
rc=$?
secs=$(($(date +%s) - t0))
[ $rc = 1 ] && ok "failing stages: exit status 1" ||
	no "failing stages: exit status 1 (got $rc)"
last=$(tail -n 1 "$W/fail.out")
[ "$last" = "17 passed, 6 failed, 1 skipped" ] &&
	ok "failing stages: the last line is '17 passed, 6 failed, 1 skipped'" ||
	no "failing stages: the last line is '17 passed, 6 failed, 1 skipped' (got '$last')"
expect "a failing Check case is named" '^  fails: f-check: tc:case_that_fails: boom$' "$W/fail.out"
expect "a failing 'not ok' line is named" '^  fails: f-tap: not ok - b_that_fails$' "$W/fail.out"
expect "a crash after Check's summary is a failure" '^  fails: f-crash: killed by signal 11$' "$W/fail.out"
expect "the stage's later commands run" 't-run: f-after: ok' "$W/logs/fails.log"
expect "a process left running is named" '^  leaks: left running after the stage \(killed\): [0-9]+ sleep$' "$W/fail.out"
expect "a hung command is named" '^  hangs: h-sleep: stopped by SIGTERM' "$W/fail.out"
expect "a stage at its time limit is said so" '^  hangs: stopped at its time limit of 6 s$' "$W/fail.out"
expect "a build failure is named" '^  breaks: make breaks exited with status 2' "$W/fail.out"
expect "the stages after the failures run" '^\[5/5\] passes \.\.\. ok' "$W/fail.out"
[ $secs -lt 60 ] && ok "the hung stage was stopped in time ($secs s)" ||
	no "the hung stage was stopped in time ($secs s)"
left=$(alive)
[ -z "$left" ] && ok "nothing left running" ||
	{ no "nothing left running: $left"; kill -KILL $left 2>/dev/null; }

# 3. SIGTERM to the driver: a summary all the same, status 130, no leftover.
drive "$W/int.out" passes:60 hangs:60 passes:60 &
d=$!
sleep 3
pkill -TERM -P "$d" -f check-driver 2>/dev/null ||
	kill -TERM "$(pgrep -P "$d")" 2>/dev/null
wait "$d"
rc=$?
[ $rc = 130 ] && ok "interrupted: exit status 130" ||
	no "interrupted: exit status 130 (got $rc)"
expect "interrupted: the stage is named" '^  hangs: interrupted$' "$W/int.out"
expect "interrupted: the summary is the last line" '^[0-9]+ passed, 1 failed, 1 skipped$' <(tail -n 1 "$W/int.out")
sleep 1
left=$(alive)
[ -z "$left" ] && ok "interrupted: nothing left running" ||
	{ no "interrupted: nothing left running: $left"; kill -KILL $left 2>/dev/null; }

echo "$pass passed, $fail failed"
[ $fail = 0 ]
