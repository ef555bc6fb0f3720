#!/bin/sh
# Soak: 10,000 concurrent TCP connections echoing through the kernel's
# epoll (control), rp_epoll_* and the preload, plain and in the completion
# mode (RINGPOLL_COMPLETION=1, whose stats line must show it served the
# sockets: cs_sockets > 0), three rounds each. rpbench's
# load generator checks every byte; between rounds the server must be back
# to the fds it started with and its RSS must not grow by more than
# SOAK_RSS_KB from the second round on. The server must then exit cleanly
# on SIGTERM: with a build under AddressSanitizer (make check-soak-lsan),
# LeakSanitizer checks it at exit and a leak fails the round.
# Usage: tests/soak/soak.sh BUILD_DIR (SOAK_MODES picks modes, all four by
# default)
# Every process has a hard time limit (timeout -k): a server that does not
# exit within SOAK_EXIT_SECONDS of SIGTERM fails its mode, is shown (its
# threads' states) and killed, and the next mode runs; nothing this script
# started outlives it.
set -u
B=${1:-build}
CONNS=${SOAK_CONNS:-10000}
SECONDS_PER_ROUND=${SOAK_SECONDS:-3}
RSS_SLACK=${SOAK_RSS_KB:-1024}
EXIT_LIMIT=${SOAK_EXIT_SECONDS:-60}
srv=""
# timeout(1) leads a process group of its own: kill the whole of it.
kill_server() {
	[ -n "$srv" ] || return 0
	kill -KILL -- "-$srv" 2>/dev/null
	kill -KILL "$srv" 2>/dev/null
	wait "$srv" 2>/dev/null
	srv=""
}
trap 'kill_server' EXIT
trap 'kill_server; exit 124' INT TERM HUP
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
no() { fail=$((fail + 1)); echo "not ok - $1"; }
port=$((31000 + $$ % 500 * 2))
# Each side holds CONNS fds: raise the soft limit to what is needed.
ulimit -n $((CONNS + 1000)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CONNS + 100)) ]; then
	CONNS=$(($(ulimit -n) - 200))
	echo "# the fd limit allows $CONNS connections only"
fi

# The server's count of open fds, once it has closed what the load left.
settled_fds() {
	n=0
	while [ $n -lt 50 ]; do
		c=$(ls "/proc/$1/fd" 2>/dev/null | wc -l)
		[ "$c" -le "$2" ] && break
		sleep 0.1
		n=$((n + 1))
	done
	echo "$c"
}

# Is socket inode $1 a half-open connection: established, nothing queued
# either way, and its peer's end gone (no socket, not even in TIME-WAIT,
# holds the peer's address)? No FIN or RST ever reached it, so no epoll,
# the kernel's included, can report its end: the server cannot know, and
# it is no leak of the server's (loopback drops a last segment now and
# then under 10,000 closes at once). Anything else new is counted.
half_open() {
	line=$(ss -tanei 2>/dev/null | grep -F "ino:$1 ")
	set -- $line
	[ "${1:-}" = ESTAB ] && [ "${2:-}" = 0 ] && [ "${3:-}" = 0 ] &&
		[ -n "${5:-}" ] &&
		! ss -tan 2>/dev/null | awk -v p="$5" '$4 == p' | grep -q .
}

# The kernel's count of connections a full listen queue dropped a
# handshake's last ACK of (TcpExt ListenOverflows).
listen_overflows() {
	awk '/^TcpExt:/ { if (!n) { for (i = 1; i <= NF; i++) h[i] = $i; n = 1 }
		else for (i = 1; i <= NF; i++) if (h[i] == "ListenOverflows") print $i }' \
		/proc/net/netstat 2>/dev/null
}

# What the server holds: one line per fd, its number and what it is.
fd_list() {
	for f in /proc/"$1"/fd/*; do
		echo "${f##*/} $(readlink "$f" 2>/dev/null)"
	done | sort -n
}

for mode in ${SOAK_MODES:-epoll rp-epoll preload completion}; do
	runner=""
	m=$mode
	if [ $mode = preload ]; then
		runner="$B/ringpoll-run"
		m=epoll
	elif [ $mode = completion ]; then
		runner="env RINGPOLL_COMPLETION=1 RINGPOLL_STATS=1 $B/ringpoll-run"
		m=epoll
	fi
	port=$((port + 2))
	echo "# $mode: $CONNS connections, port $port"
	err=$(mktemp)
	# shellcheck disable=SC2086
	# Its whole life: three rounds of at most 60 s of load and 5 s of
	# settling each (slow under a loaded sanitizer build, never a
	# failure by itself), then EXIT_LIMIT for its exit.
	timeout -k 5 $((3 * 65 + 10 + EXIT_LIMIT)) $runner "$B/rpbench" server \
		--mode $m --port $port > /dev/null 2> "$err" &
	srv=$!
	# timeout's child: rpbench (ringpoll-run execs it).
	pid=""
	n=0
	while [ $n -lt 50 ]; do
		sleep 0.1
		pid=$(pgrep -P $srv | head -1)
		[ -n "$pid" ] && grep -q rpbench "/proc/$pid/comm" 2>/dev/null &&
			break
		n=$((n + 1))
	done
	if [ -z "$pid" ] || ! grep -q rpbench "/proc/$pid/comm" 2>/dev/null; then
		no "$mode: the server did not start"
		sed 's/^/#   /' "$err" | head -n 20
		kill_server
		rm -f "$err"
		continue
	fi
	fds0=$(ls "/proc/$pid/fd" | wc -l)
	list0=$(fd_list "$pid")
	good=1
	rss=""
	# Round 1 warms the allocators up (the completion mode's buffers
	# stay with its recycled sockets); rounds 2 and 3 must not grow.
	for round in 1 2 3; do
		lo0=$(listen_overflows)
		if ! timeout -k 5 60 "$B/rpbench" load --port $port --conns $CONNS \
		    --size 64 --seconds "$SECONDS_PER_ROUND" --warmup 1 \
		    > /dev/null 2>&1; then
			echo "# $mode round $round: the load failed"
			good=0
		fi
		fds=$(settled_fds "$pid" "$fds0")
		if [ "$fds" -gt "$fds0" ]; then
			echo "# $mode round $round: $fds fds open, $fds0 before; listen overflows during the round: $(($(listen_overflows) - lo0)); new:"
			fd_list "$pid" | grep -vxF "$list0" | head -n 10 |
			while read -r n what; do
				echo "#   $n $what"
				ino=${what#socket:[}
				ino=${ino%]}
				[ "$ino" = "$what" ] && continue
				line=$(ss -tanei 2>/dev/null | grep -F "ino:$ino ")
				echo "#     $line"
				# and its peer's end, if it is still there
				peer=$(echo "$line" | awk '{ print $5 }')
				[ -n "$peer" ] && ss -tanei 2>/dev/null |
					grep -F " $peer " | grep -vF "ino:$ino " |
					sed 's/^/#     peer: /'
			done
			# Late or lost: does it go without more load?
			n=0
			while [ $n -lt 100 ] &&
			    [ "$(ls "/proc/$pid/fd" | wc -l)" -gt "$fds0" ]; do
				sleep 0.1
				n=$((n + 1))
			done
			echo "# $mode round $round: $(ls "/proc/$pid/fd" | wc -l) fds open 10 s later"
			# What is still new: half-open connections are the
			# kernel's, not counted (and kept as the baseline).
			left=$(fd_list "$pid" | grep -vxF "$list0")
			leaks=0 halfs=0
			while read -r n what; do
				[ -n "$n" ] || continue
				ino=${what#socket:[}
				ino=${ino%]}
				if [ "$ino" != "$what" ] && half_open "$ino"; then
					echo "# $mode round $round: fd $n is half-open (its peer is gone, no FIN or RST reached it): not counted"
					list0=$(printf '%s\n%s' "$list0" "$n $what")
					fds0=$((fds0 + 1))
					halfs=$((halfs + 1))
				else
					leaks=$((leaks + 1))
				fi
			done <<EOF_LEFT
$left
EOF_LEFT
			# Closed late (after settled_fds) counts, as before.
			[ "$leaks" -gt 0 ] || [ "$halfs" -eq 0 ] && good=0
		fi
		r=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
		if [ -n "$rss" ] && [ $((r - rss)) -gt "$RSS_SLACK" ]; then
			echo "# $mode: RSS grew from $rss to $r kB"
			good=0
		fi
		[ $round -gt 1 ] && rss=$r
	done
	# To the server itself: timeout(1), sent SIGTERM, passes it on and
	# SIGKILLs its child 5 s later (its -k), which a LeakSanitizer check
	# at exit on a busy machine outlasted (status 137, no failure of
	# the server's own).
	kill -TERM "$pid" 2>/dev/null
	# Bounded: a server still there EXIT_LIMIT s after SIGTERM fails.
	n=0
	while kill -0 "$pid" 2>/dev/null && [ $n -lt $((EXIT_LIMIT * 10)) ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "# $mode: the server (pid $pid) did not exit within $EXIT_LIMIT s of SIGTERM; its threads:"
		for t in /proc/"$pid"/task/*; do
			echo "#   $(cat "$t/comm" 2>/dev/null) $(cut -d' ' -f3 "$t/stat" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null)"
		done
		sed 's/^/#   /' "$err" | head -n 20
		kill_server
		rm -f "$err"
		no "$mode: the server exits within $EXIT_LIMIT s of SIGTERM"
		continue
	fi
	wait $srv
	st=$?
	srv=""
	# A clean exit, and nothing a sanitizer says (LeakSanitizer at exit).
	if [ $st != 0 ] || grep -q Sanitizer "$err"; then
		echo "# $mode: the server exited with status $st:"
		sed 's/^/#   /' "$err" | head -n 40
		good=0
	fi
	if [ $mode = completion ] &&
	    ! grep -Eq "^ringpoll-stats .* cs_sockets=[1-9]" "$err"; then
		echo "# $mode: no stats line counts completion sockets:"
		sed 's/^/#   /' "$err" | head -n 5
		good=0
	fi
	rm -f "$err"
	if [ $good = 1 ]; then
		ok "$mode: $CONNS connections, 3 rounds, every byte, no fd or memory growth after the first (RSS $rss kB)"
	else
		no "$mode: $CONNS connections, 3 rounds"
	fi
done
echo "$pass passed, $fail failed"
[ $fail = 0 ]
