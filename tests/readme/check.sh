#!/bin/bash
# The README's commands are real. Every command shown in a ```sh block of
# README.md is checked, without running anything long or privileged:
#  - `make TARGET [VAR=VALUE...]`: the target exists in make's database and
#    each VAR is one the build uses; when a dry run is safe, `make -n` of the
#    whole line succeeds. (GNU make runs a recipe line that mentions $(MAKE)
#    even under -n: a sub-make is then dry too, but a line that hands
#    $(MAKE) to another program, as `make check` does to tools/check-driver,
#    would run that program for real. Such targets are only looked up.)
#  - `build/PROG ...`: PROG exists after `make`; `build/ringpoll-run`'s
#    options on the line are accepted (run with `true` as the command: the
#    servers named in the README are not started).
#  - `cc FILE.c ...`: this build is installed into a prefix under
#    BUILD/tests/readme, and a small epoll program compiles against it with
#    the line's flags and, run, its epoll is on io_uring and reports an
#    event.
#  - `export LD_LIBRARY_PATH=DIR`: DIR is where `make install` puts the
#    library for the prefix DIR/..
#  - ALLOW below: commands that need root or change the system; one
#    `skip:` line each.
# Anything else is "not ok": a new kind of command needs a check here.
# Then every `make TARGET ...` written inline (in backquotes) anywhere in
# the README: the target exists and its variables are used.
#
# Usage: tests/readme/check.sh BUILD_DIR [README]   (from the top of the
# tree, after `make`). EXTRA_CFLAGS is added to the compile (a sanitizer
# build's flags). Prints ok/not ok per command, then "N passed, N failed";
# exits non-zero on a failure.
# shellcheck disable=SC2016 # $(MAKE) and $(B) are make syntax, not ours
set -u
B=${1:-build}
README=${2:-README.md}
MAKE=${MAKE:-make}
EXTRA_CFLAGS=${EXTRA_CFLAGS:-}
export ASAN_OPTIONS=${ASAN_OPTIONS:-verify_asan_link_order=0}
T="timeout -k 5"
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
no() { fail=$((fail + 1)); echo "not ok - $1"; }

# Commands that cannot be checked here: the first words, and why.
declare -A ALLOW=(
	["sudo ldconfig"]="needs root and changes the system's loader cache"
)

out=$B/tests/readme
rm -rf "$out"
mkdir -p "$out"

if [ ! -r "$README" ]; then
	no "$README is readable"
	echo "$pass passed, $fail failed"
	exit 1
fi

# make's database: targets, their prerequisites and recipes (unexpanded,
# continuation lines joined). The goal .DEFAULT builds nothing.
$T 60 "$MAKE" -pq B="$B" .DEFAULT > "$out/make-db.txt" 2>/dev/null
awk '
	/^# Not a target:/ { skip = 1; next }
	/^$/ { intarget = 0; next }
	/^#/ { next }
	/^\t/ {
		if (!intarget) next
		line = substr($0, 2)
		if (cont != "") { line = cont " " line; cont = "" }
		if (line ~ /\\$/) { cont = substr(line, 1, length(line) - 1); next }
		print "R\t" target "\t" line
		next
	}
	/^[^\t=:#][^=:]*::?([^=]|$)/ {
		if (skip) { skip = 0; intarget = 0; next }
		i = index($0, ":")
		target = substr($0, 1, i - 1)
		deps = substr($0, i + 1)
		sub(/^:/, "", deps)
		gsub(/\|/, " ", deps)
		print "T\t" target "\t" deps
		intarget = 1
		cont = ""
		next
	}
	{ skip = 0 }
' "$out/make-db.txt" > "$out/make-rules.txt"

declare -A DEPS RECIPE
while IFS=$'\t' read -r kind name rest; do
	if [ "$kind" = T ]; then
		DEPS[$name]="${DEPS[$name]:-} $rest"
	else
		RECIPE[$name]="${RECIPE[$name]:-}$rest"$'\n'
	fi
done < "$out/make-rules.txt"

# 0 if `make -n GOAL` runs nothing for real: no recipe line reachable from
# GOAL (through prerequisites and sub-makes) passes $(MAKE) to a program
# other than make. Sets WHY to the offending line otherwise.
declare -A SEEN
dry_safe() {
	local t=$1 line words w
	[ -n "${SEEN[$t]:-}" ] && return 0
	SEEN[$t]=1
	while IFS= read -r line; do
		line=${line#"${line%%[![:space:]@+-]*}"}
		case $line in
		*'$(MAKE)'* | *'${MAKE}'*) ;;
		*) continue ;;
		esac
		case $line in
		'$(MAKE)'* | '${MAKE}'*)
			read -ra words <<< "${line#*MAKE?}"
			for w in "${words[@]}"; do
				case $w in
				-* | *=* | *'"'* | *"'"*) continue ;;
				esac
				w=${w//'$(B)'/$B}
				dry_safe "$w" || return 1
			done
			;;
		*)
			WHY=$line
			return 1
			;;
		esac
	done <<< "${RECIPE[$t]:-}"
	for w in ${DEPS[$t]:-}; do
		dry_safe "$w" || return 1
	done
	return 0
}

# A variable set on a make line must be one the build reads.
var_used() {
	git grep -qw -- "$1" -- Makefile '*.mk' tools/ 2>/dev/null ||
		grep -rqw -- "$1" Makefile tools/ 2>/dev/null
}

# check_make WHERE WORDS...: WORDS is the command line after `make`.
# DRY=0 looks the target up only.
check_make() {
	local where=$1 goal="" w vars=() bad=""
	shift
	for w in "$@"; do
		case $w in
		*=*) vars+=("$w")
		     var_used "${w%%=*}" || bad="$bad ${w%%=*}" ;;
		-*) ;;
		*) [ -z "$goal" ] && goal=$w ;;
		esac
	done
	[ -z "$goal" ] && goal=all
	local name="$where: make $*"
	if [ -z "${DEPS[$goal]+x}" ]; then
		no "$name: no target '$goal' in the Makefile"
		return
	fi
	if [ -n "$bad" ]; then
		no "$name: the build reads no variable$bad"
		return
	fi
	if [ "$DRY" = 0 ]; then
		ok "$name: the target exists"
		return
	fi
	SEEN=()
	WHY=""
	if ! dry_safe "$goal"; then
		ok "$name: the target exists (not dry-run: its recipe runs '${WHY%% *}')"
		return
	fi
	local log
	log=$out/make-n-$(printf %s "$goal" | tr -c 'A-Za-z0-9._-' _).txt
	if $T 120 "$MAKE" -n B="$B" "$@" > "$log" 2>&1; then
		ok "$name (make -n)"
	else
		no "$name (make -n failed: $log)"
		tail -5 "$log"
	fi
}

# The launcher's options on a README line are accepted.
check_launcher() {
	local where=$1 prog=$2 opts=() w
	shift 2
	for w in "$@"; do
		case $w in
		--) break ;;
		-*) opts+=("$w") ;;
		*) break ;;
		esac
	done
	if ! $T 10 "$prog" --help > "$out/run-help.txt" 2>&1 ||
	    ! grep -q '^Usage: ringpoll-run' "$out/run-help.txt"; then
		no "$where: ringpoll-run --help"
		return
	fi
	if $T 30 "$prog" "${opts[@]}" true > "$out/run.txt" 2>&1; then
		ok "$where: ringpoll-run ${opts[*]:+${opts[*]} }CMD runs a command ($w itself is not run)"
	else
		no "$where: ringpoll-run ${opts[*]} true"
		tail -5 "$out/run.txt"
	fi
}

# `cc SRC.c FLAGS...`: the README's flags, a small epoll program of ours.
check_cc() {
	local where=$1 args=() w src=$out/prog.c
	shift
	cat > "$src" <<'EOF'
#include <stdio.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
	char path[64], link[64] = "";
	int p[2], epfd = epoll_create1(EPOLL_CLOEXEC);

	if (epfd < 0 || pipe(p) < 0 ||
	    epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &ev) < 0 ||
	    write(p[1], "x", 1) != 1 ||
	    epoll_wait(epfd, &ev, 1, 5000) != 1 || ev.data.u64 != 7)
		return 1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", epfd);
	if (readlink(path, link, sizeof(link) - 1) < 0)
		return 1;
	printf("epoll fd %s\n", link);
	return close(p[0]) || close(p[1]) || close(epfd);
}
EOF
	for w in "$@"; do
		case $w in
		*.c) args+=("$src") ;;
		*) args+=("$w") ;;
		esac
	done
	# The line is for an installed ringpoll: install this build into a
	# prefix of our own, as a user would (the build tree has no
	# libringpoll.so.0 for the loader).
	if ! $T 300 "$MAKE" -s install B="$B" PREFIX="$PWD/$out/prefix" \
	    > "$out/install.txt" 2>&1; then
		no "$where: cc $*: make install into $out/prefix failed"
		tail -5 "$out/install.txt"
		return
	fi
	# shellcheck disable=SC2086
	if ! $T 120 cc -Wall -Wextra -Werror $EXTRA_CFLAGS \
	    -I"$out/prefix/include" -L"$out/prefix/lib" "${args[@]}" \
	    -o "$out/prog" > "$out/cc.txt" 2>&1; then
		no "$where: cc $*: does not build against $B"
		tail -5 "$out/cc.txt"
		return
	fi
	if LD_LIBRARY_PATH=$out/prefix/lib $T 30 "$out/prog" \
	    > "$out/prog.txt" 2>&1 &&
	    grep -q 'anon_inode:\[io_uring\]' "$out/prog.txt"; then
		ok "$where: cc $* (builds; its epoll is on io_uring)"
	else
		no "$where: cc $*: built, but its run: $(head -c 200 "$out/prog.txt")"
	fi
}

# `export LD_LIBRARY_PATH=DIR`: make install puts the library in DIR.
check_export() {
	local where=$1 assign=$2 dir prefix
	case $assign in
	LD_LIBRARY_PATH=*/lib) ;;
	*) no "$where: export $assign: no check for this variable"; return ;;
	esac
	dir=${assign#*=}
	dir=${dir//'$HOME'/\/home\/user}
	prefix=${dir%/lib}
	if $T 120 "$MAKE" -n B="$B" install PREFIX="$prefix" \
	    > "$out/make-n-export.txt" 2>&1 &&
	    grep -q " $dir/libringpoll.so" "$out/make-n-export.txt"; then
		ok "$where: export $assign (make install PREFIX=${prefix/\/home\/user/\$HOME} puts libringpoll.so there)"
	else
		no "$where: export $assign: make install PREFIX=$prefix does not put libringpoll.so in $dir"
	fi
}

# The ```sh blocks: "LINE<TAB>command", comments and blank lines dropped.
awk '
	/^```sh[[:space:]]*$/ { on = 1; next }
	/^```/ { on = 0; next }
	on {
		line = $0
		sub(/[[:space:]]+#.*$/, "", line)
		sub(/^[[:space:]]*#.*$/, "", line)
		sub(/^[[:space:]]+/, "", line)
		if (line != "") print NR "\t" line
	}
' "$README" > "$out/commands.txt"

if [ ! -s "$out/commands.txt" ]; then
	no "$README has shell commands in \`\`\`sh blocks"
fi

DRY=1
while IFS=$'\t' read -r nr cmd; do
	where="${README##*/}:$nr"
	read -ra words <<< "$cmd"
	skipped=""
	for a in "${!ALLOW[@]}"; do
		if [ "$cmd" = "$a" ] || [ "${cmd#"$a "}" != "$cmd" ]; then
			echo "skip: readme: $cmd: ${ALLOW[$a]}"
			skipped=1
		fi
	done
	[ -n "$skipped" ] && continue
	case ${words[0]} in
	make)
		check_make "$where" "${words[@]:1}" ;;
	build/*)
		prog=$B/${words[0]#build/}
		if [ ! -x "$prog" ]; then
			no "$where: ${words[0]}: not built by make ($prog)"
		elif [ "${words[0]}" = build/ringpoll-run ]; then
			check_launcher "$where" "$prog" "${words[@]:1}"
		else
			ok "$where: ${words[0]} exists after make"
		fi
		;;
	cc | gcc)
		check_cc "$where" "${words[@]:1}" ;;
	export)
		check_export "$where" "${words[1]:-}" ;;
	*)
		no "$where: $cmd: no check for this command (tests/readme/check.sh)" ;;
	esac
done < "$out/commands.txt"

# `make ...` in backquotes in the text: the target exists.
DRY=0
grep -n -o '`make [^`]*`' "$README" | sort -t: -k2 -u |
while IFS= read -r hit; do
	nr=${hit%%:*}
	cmd=${hit#*:\`make }
	cmd=${cmd%\`}
	read -ra words <<< "$cmd"
	check_make "${README##*/}:$nr" "${words[@]}"
	echo "$pass $fail" > "$out/counts"
done
if [ -r "$out/counts" ]; then
	read -r pass fail < "$out/counts"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
