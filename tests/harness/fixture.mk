# Stages for tests/harness/selftest.sh: what tools/check-driver must count,
# name, bound and clean up. T is tools/t-run (set by selftest.sh).
passes:
	$(T) p-check 10 sh -c 'echo "skip: p_skipped: a reason"; echo "100%: Checks: 5, Failures: 0, Errors: 0"'
	$(T) p-tap 10 printf 'ok - one\nok - two\n'
	$(T) p-plain 10 true
fails:
	$(T) f-check 10 sh -c 'echo "80%: Checks: 5, Failures: 1, Errors: 0"; echo "t.c:1:F:tc:case_that_fails:0: boom"; exit 1'
	$(T) f-tap 10 printf 'ok - a\nnot ok - b_that_fails\n'
	$(T) f-crash 10 sh -c 'echo "100%: Checks: 2, Failures: 0, Errors: 0"; kill -SEGV $$$$'
	$(T) f-after 10 true
leaks:
	$(T) l-daemon 10 sh -c '(trap "" TERM HUP; exec setsid sleep 300) & echo ok - started'
hangs:
	$(T) h-sleep 100 sh -c 'trap "" TERM; sleep 100'
breaks:
	false
