#!/bin/sh
# `make install` into a fresh PREFIX, used from there as a user would, then
# `make uninstall`: nothing may be left behind.
# Usage: tests/install/check.sh BUILD_DIR   (from the top of the tree)
# EXTRA_CFLAGS is added to each compile (the sanitizer flags of a
# sanitizer build, whose library needs them).
set -u
B=${1:-build}
MAKE=${MAKE:-make}
EXTRA_CFLAGS=${EXTRA_CFLAGS:-}
export ASAN_OPTIONS=${ASAN_OPTIONS:-verify_asan_link_order=0}
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
no() { fail=$((fail + 1)); echo "not ok - $1"; }
T="timeout -k 5"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringpoll-install.XXXXXX") || exit 1
out=$B/tests/install-out
rm -rf "$out"
mkdir -p "$out"
trap 'rm -rf "$tmp"' EXIT
probe_c=tests/preload/epoll-probe.c

# 1. Install, without DESTDIR.
if $T 600 $MAKE -s install PREFIX="$tmp" B="$B" > "$out/install.txt" 2>&1
then
	ok "make install PREFIX=$tmp"
else
	no "make install PREFIX=$tmp"; tail -20 "$out/install.txt"
	echo "$pass passed, $fail failed"
	exit 1
fi
for f in bin/ringpoll-run lib/libringpoll.a lib/libringpoll.so \
    lib/libringpoll.so.0 lib/libringpoll-preload.so \
    lib/pkgconfig/ringpoll.pc include/ringpoll.h include/ringpoll_epoll.h \
    include/ringpoll_compat.h share/man/man1/ringpoll-run.1 \
    share/man/man7/ringpoll.7 share/man/man3/rp_epoll_create1.3; do
	[ -e "$tmp/$f" ] || no "installed: $f is missing"
done

# 2. The installed launcher: its options, and its own library.
run=$tmp/bin/ringpoll-run
if [ "$($T 10 "$run" --version)" = \
    "$($T 10 "$B/ringpoll-run" --version)" ]; then
	ok "installed ringpoll-run --version"
else
	no "installed ringpoll-run --version"
fi
$T 10 "$run" --help > "$out/help.txt" 2> "$out/help.err"
rc=$?
if [ $rc = 0 ] && grep -q '^Usage: ringpoll-run' "$out/help.txt" &&
    [ ! -s "$out/help.err" ]; then
	ok "installed ringpoll-run --help: stdout, status 0"
else
	no "installed ringpoll-run --help: stdout, status 0 (rc $rc)"
fi
if $T 60 "$run" -v "$B/tests/epoll-probe" > "$out/probe.txt" 2>&1 &&
    grep -q 'epfd=anon_inode:\[io_uring\] event=ok' "$out/probe.txt" &&
    grep -q "^ringpoll-run: LD_PRELOAD=$tmp/lib/libringpoll-preload.so " \
	"$out/probe.txt"; then
	ok "installed ringpoll-run preloads the installed library: io_uring"
else
	no "installed ringpoll-run preloads the installed library: io_uring"
	cat "$out/probe.txt"
fi

# 3. pkg-config: a program built with the installed headers and library,
# shared (run with LD_LIBRARY_PATH) and static.
pc() { PKG_CONFIG_PATH=$tmp/lib/pkgconfig $T 10 pkg-config "$@"; }
if cflags=$(pc --cflags ringpoll) && libs=$(pc --libs ringpoll) &&
    slibs=$(pc --static --libs ringpoll); then
	ok "pkg-config ringpoll: $cflags $libs"
else
	no "pkg-config ringpoll"
	cflags= libs= slibs=
fi
n=$(echo " $slibs " | tr ' ' '\n' | grep -c '^-luring$')
if [ "$n" = 1 ]; then
	ok "pkg-config --static --libs has -luring once: $slibs"
else
	no "pkg-config --static --libs has -luring $n times: $slibs"
fi
# shellcheck disable=SC2086 # flags are words
if $T 120 ${CC:-cc} -std=gnu11 $EXTRA_CFLAGS -include ringpoll_compat.h $cflags \
	"$probe_c" $libs -o "$out/probe-shared" > "$out/cc.txt" 2>&1 &&
    LD_LIBRARY_PATH=$tmp/lib $T 60 "$out/probe-shared" \
	> "$out/shared.txt" 2>&1 &&
    grep -q 'epfd=anon_inode:\[io_uring\] event=ok' "$out/shared.txt"; then
	ok "built with pkg-config, run with LD_LIBRARY_PATH: io_uring"
else
	no "built with pkg-config, run with LD_LIBRARY_PATH: io_uring"
	cat "$out/cc.txt" "$out/shared.txt" 2>/dev/null
fi
# Without LD_LIBRARY_PATH the loader does not know $tmp/lib: the step
# the README asks for (ldconfig or LD_LIBRARY_PATH) is needed.
if { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -q 'libringpoll\.so\.0 '; then
	echo "skip: without LD_LIBRARY_PATH: a libringpoll is installed" \
		"system-wide"
elif [ -x "$out/probe-shared" ] &&
    ! $T 60 "$out/probe-shared" > /dev/null 2>&1; then
	ok "without LD_LIBRARY_PATH the shared build does not start"
else
	no "without LD_LIBRARY_PATH the shared build does not start"
fi
# Static: libringpoll.a first, the rest as pkg-config --static says.
sdeps=$(echo " $slibs " | sed 's/ -lringpoll / /')
# shellcheck disable=SC2086
if $T 120 ${CC:-cc} -std=gnu11 $EXTRA_CFLAGS -include ringpoll_compat.h $cflags \
	"$probe_c" -Wl,-Bstatic -lringpoll -Wl,-Bdynamic $sdeps \
	-o "$out/probe-static" > "$out/scc.txt" 2>&1 &&
    ! ldd "$out/probe-static" | grep -q libringpoll &&
    $T 60 "$out/probe-static" > "$out/static.txt" 2>&1 &&
    grep -q 'epfd=anon_inode:\[io_uring\] event=ok' "$out/static.txt"; then
	ok "built with pkg-config --static (libringpoll.a): io_uring"
else
	no "built with pkg-config --static (libringpoll.a): io_uring"
	cat "$out/scc.txt" "$out/static.txt" 2>/dev/null
fi
# The loop API too: the README's example, both models.
# shellcheck disable=SC2086
if $T 120 ${CC:-cc} -std=gnu11 $EXTRA_CFLAGS $cflags examples/echo.c $libs \
	-o "$out/echo" > "$out/ecc.txt" 2>&1 &&
    LD_LIBRARY_PATH=$tmp/lib $T 60 "$out/echo" > "$out/echo.txt" 2>&1 &&
    LD_LIBRARY_PATH=$tmp/lib $T 60 "$out/echo" completion \
	>> "$out/echo.txt" 2>&1 &&
    [ "$(grep -c '^echoed: hello, ring$' "$out/echo.txt")" = 2 ]; then
	ok "examples/echo.c against the install, both models"
else
	no "examples/echo.c against the install, both models"
	cat "$out/ecc.txt" "$out/echo.txt" 2>/dev/null
fi

# 4. The installed manual: every page formats, every symbol is found.
if $T 300 tests/man/check.sh "$tmp/share/man" lib/ringpoll.map \
    > "$out/man.txt" 2>&1; then
	ok "installed man pages: $(tail -1 "$out/man.txt")"
else
	no "installed man pages"; grep -v '^ok' "$out/man.txt"
fi
if command -v man > /dev/null 2>&1; then
	# man -w follows a link's .so to the page it names.
	missing=
	for s in ringpoll-run ringpoll $(sed -n \
	    's/^[[:space:]]*\(rp_[a-z0-9_]*\);.*/\1/p' lib/ringpoll.map); do
		MANPATH=$tmp/share/man $T 30 man -w "$s" 2>/dev/null |
			grep -q "^$tmp/share/man/" || missing="$missing $s"
	done
	if [ -z "$missing" ]; then
		ok "man NAME finds every exported name in the install (MANPATH)"
	else
		no "man NAME does not find:$missing"
	fi
fi

# 5. Uninstall: no file or link left.
if $T 120 $MAKE -s uninstall PREFIX="$tmp" B="$B" > "$out/uninstall.txt" 2>&1
then
	left=$(find "$tmp" ! -type d)
	if [ -z "$left" ]; then
		ok "make uninstall leaves no file behind"
	else
		no "make uninstall leaves files behind:"; echo "$left"
	fi
else
	no "make uninstall"; cat "$out/uninstall.txt"
fi

echo "$pass passed, $fail failed"
[ $fail = 0 ]
