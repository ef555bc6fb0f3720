#!/bin/sh
# The manual pages: each formats without a warning, and every exported
# symbol has one. Usage: tests/man/check.sh MANDIR MAPFILE
# MANDIR holds man1/ man3/ man7/, the .so links included (build/man, or an
# installed share/man); MAPFILE is lib/ringpoll.map.
set -u
MANDIR=$1
MAP=$2
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
no() { fail=$((fail + 1)); echo "not ok - $1"; }

if ! command -v man >/dev/null 2>&1; then
	echo "skip: check-man: man not installed"
	exit 0
fi
map=$(cd "$(dirname "$MAP")" && pwd)/$(basename "$MAP")
cd "$MANDIR" || exit 1

# man -l formats the page; anything on stderr is a warning. From MANDIR,
# so that a link's ".so man3/PAGE.3" resolves.
for f in man1/*.1 man3/*.3 man7/*.7; do
	[ -f "$f" ] || { no "no page matches $f"; continue; }
	w=$(LC_ALL=C.UTF-8 MANWIDTH=80 timeout -k 5 30 man --warnings -l "$f" \
		2>&1 >/dev/null)
	if [ -z "$w" ]; then
		ok "$f formats without a warning"
	else
		no "$f: $w"
	fi
done

# Every global of the version script is a page or a link to one.
for s in $(sed -n 's/^[[:space:]]*\(rp_[a-z0-9_]*\);.*/\1/p' "$map"); do
	if [ -f "man3/$s.3" ]; then
		ok "man $s"
	else
		no "man $s: no man3/$s.3"
	fi
done

echo "$pass passed, $fail failed"
[ $fail = 0 ]
