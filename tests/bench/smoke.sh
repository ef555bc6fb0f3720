#!/bin/sh
# The benchmark works, quickly: every mode once on a tiny matrix, the CSV's
# header, every byte checked by the load generator, and rpbench's answers
# to bad input. Numbers are not judged here (docs/BENCHMARKS.md is).
# Usage: tests/bench/smoke.sh BUILD_DIR
set -u
B=${1:-build}
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
no() { fail=$((fail + 1)); echo "not ok - $1"; }
out=$B/tests/bench-smoke
mkdir -p "$out"

if DEMO_SECONDS=0.2 DEMO_WARMUP=0.05 DEMO_ROUNDS=1 DEMO_CONNS=1,8 \
    DEMO_OUT="$out/demo" timeout -k 10 300 tools/bench/demo --build "$B" \
    --no-make > "$out/demo.txt" 2>&1; then
	ok "the demo matrix runs every mode"
else
	no "the demo matrix runs every mode"; tail -20 "$out/demo.txt"
fi
want="mode,conns,size,rps,p50_us,p99_us,p999_us,server_cpu_us_per_req,server_syscalls_per_req,ratio_vs_epoll"
if [ "$(head -1 "$out/demo/results.csv" 2>/dev/null)" = "$want" ] &&
    [ "$(grep -c . "$out/demo/results.csv")" -eq 21 ]; then
	ok "results.csv has the header and a row per mode and size"
else
	no "results.csv has the header and a row per mode and size"
fi

# Over a unix socket (--unix): the load checks every byte, as on TCP, and
# each server removes its socket at exit.
if DEMO_TRANSPORT=unix DEMO_MODES=rp-epoll,rp-completion DEMO_SECONDS=0.2 \
    DEMO_WARMUP=0.05 DEMO_ROUNDS=1 DEMO_CONNS=8 DEMO_OUT="$out/unix" \
    timeout -k 10 120 tools/bench/demo --build "$B" --no-make \
    > "$out/unix.txt" 2>&1 &&
    [ "$(grep -c . "$out/unix/results.csv")" -eq 4 ] &&
    [ -d "$out/unix/sock" ] && [ -z "$(ls -A "$out/unix/sock")" ]; then
	ok "rp-epoll and rp-completion run over a unix socket"
else
	no "rp-epoll and rp-completion run over a unix socket"
	tail -20 "$out/unix.txt"
fi

timeout -k 5 30 "$B/rpbench" server --mode nonesuch --port 1 \
	> "$out/bad.txt" 2>&1
rc=$?
if [ $rc = 2 ] && grep -qi mode "$out/bad.txt"; then
	ok "an unknown mode is refused with exit 2"
else
	no "an unknown mode is refused with exit 2 (rc $rc)"
fi
timeout -k 5 30 "$B/rpbench" load --port 1 --conns 1 --seconds 1 \
	> "$out/gone.txt" 2>&1
rc=$?
if [ $rc != 0 ] && [ -s "$out/gone.txt" ]; then
	ok "load with no server fails with a message"
else
	no "load with no server fails with a message (rc $rc)"
fi

echo "$pass passed, $fail failed"
[ $fail = 0 ]
