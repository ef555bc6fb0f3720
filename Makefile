# ringpoll: see README.md. `make`, `make check`, `make demo`,
# `make install PREFIX=...`.

MAKEFLAGS += --no-print-directory
.DEFAULT_GOAL := all
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
CC ?= cc
AR ?= ar
B ?= build
CFLAGS ?= -O2 -g
SAN_CFLAGS ?=
VERSION := 0.1.0
SOMAJOR := 0

RP_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC \
	-fvisibility=hidden -Iinclude $(CFLAGS) $(SAN_CFLAGS)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

LIB_SRCS := lib/ring.c lib/poll.c lib/loop.c lib/async.c compat/epctx.c \
	compat/eppoll.c \
	compat/epoll.c
# compat/'s registry and its poll(2)/select(2) boundary (docs/DESIGN.md).
LIB_SRCS += compat/epreg.c compat/eppollset.c
# The completion mode: a socket's buffers, and its read/write boundary.
LIB_SRCS += compat/epcs.c compat/epio.c compat/epcarry.c compat/epoff.c
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/obj/%.o)
HDRS := $(wildcard include/*.h lib/*.h compat/*.h)

TEST_SRCS := $(wildcard tests/unit/*.c)
EPOLL_T_SRCS := $(wildcard tests/epoll/*.c)
EPOLL_T_DEPS := $(EPOLL_T_SRCS) tests/epoll/t_epoll.h

# Included before any rule names their targets.
# The benchmark and the demo's matrix live in tools/bench/bench.mk, which
# defines $(B)/rpbench and demo-run.
-include tools/bench/bench.mk
# The differential fuzzer: $(B)/tests/epoll-fuzz, fuzz-check (bounded, run
# by make check) and fuzz (FUZZ_SECONDS=...).
-include tests/fuzz/fuzz.mk

.PHONY: all deps check check-run check-asan check-tsan check-valgrind check-valgrind-cmode \
	check-integration check-bench check-soak check-soak-lsan \
	check-quick check-unit check-conformance check-deps check-harness \
	check-man check-examples check-install check-readme \
	check-cmode check-cmode-engaged \
	demo install uninstall clean format FORCE

# Every test command of make check runs as `$(T) NAME SECONDS CMD...`:
# under a hard time limit (timeout -k), and counted for tools/check-driver.
T := tools/t-run

# The install's launcher, ringpoll.pc and man tree too, so that a
# `sudo make install` after `make` (same PREFIX) builds nothing as root.
all: $(B)/libringpoll.a $(B)/libringpoll.so $(B)/libringpoll-preload.so \
	$(B)/ringpoll-run $(BENCH_BIN) $(B)/install/ringpoll-run \
	$(B)/install/ringpoll.pc $(B)/man/.stamp

deps:
	@tools/install-deps

$(B)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) -c $< -o $@

$(B)/libringpoll.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/libringpoll.so: $(LIB_OBJS) lib/ringpoll.map
	$(CC) -shared -o $@ $(LIB_OBJS) $(SAN_CFLAGS) \
		-Wl,-soname,libringpoll.so.$(SOMAJOR) \
		-Wl,--version-script=lib/ringpoll.map -Wl,-z,defs -luring -lpthread

# The shim: the same objects plus compat/preload.c, exporting only the
# interposed names.
$(B)/libringpoll-preload.so: $(LIB_OBJS) $(B)/obj/compat/preload.o \
		compat/preload.map
	$(CC) -shared -o $@ $(LIB_OBJS) $(B)/obj/compat/preload.o \
		$(SAN_CFLAGS) -Wl,--version-script=compat/preload.map \
		-Wl,-z,defs -luring -ldl -lpthread

# The launcher finds the shim beside itself (the build tree), in the LIBDIR
# it was built for, or in ../lib (tools/ringpoll-run.c).
RUN_CFLAGS = -std=gnu11 -Wall -Wextra -Werror $(CFLAGS) \
	-DRINGPOLL_VERSION='"$(VERSION)"' -DRINGPOLL_LIBDIR='"$(LIBDIR)"' \
	-DRINGPOLL_BINDIR='"$(BINDIR)"'

$(B)/ringpoll-run: tools/ringpoll-run.c
	$(CC) $(RUN_CFLAGS) $< -o $@

$(B)/tests/seccomp-run: tests/preload/seccomp-run.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O1 -g $< -o $@

$(B)/tests/relisten: tests/preload/relisten.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O1 -g $(SAN_CFLAGS) $< -o $@

# Byte-exactness of registered stream sockets (issue 15's completion mode),
# on the conformance suite's helpers; run natively and under the preload.
$(B)/tests/cmode: tests/preload/cmode.c tests/epoll/t_epoll.c \
		tests/epoll/t_epoll.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 -g \
		$(SAN_CFLAGS) $(CHECK_CFLAGS) -Itests/epoll \
		tests/preload/cmode.c tests/epoll/t_epoll.c $(CHECK_LIBS) \
		-lpthread -o $@

$(B)/tests/epoll-probe: tests/preload/epoll-probe.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O1 -g $(SAN_CFLAGS) $< -o $@

# The same probe recompiled onto rp_epoll_* with the drop-in header.
$(B)/tests/epoll-probe-rp: tests/preload/epoll-probe.c $(B)/libringpoll.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O1 -g $(SAN_CFLAGS) -Iinclude \
		-include ringpoll_compat.h $< $(B)/libringpoll.a -luring \
		-lpthread -o $@

# ringpoll_compat.h on valid epoll code (tests/compat/forms.c): forced in
# ahead of the file's own _GNU_SOURCE under strict C11, included after the
# system headers, and with RINGPOLL_NO_CLOSE_MACRO.
COMPAT_T_BINS := $(B)/tests/compat-forced $(B)/tests/compat-late \
	$(B)/tests/compat-noclose
COMPAT_T_CC = $(CC) -std=c11 -Wall -Wextra -Werror -O1 -g $(SAN_CFLAGS) \
	-Iinclude

$(B)/tests/compat-forced: tests/compat/forms.c include/ringpoll_compat.h \
		$(B)/libringpoll.a
	@mkdir -p $(dir $@)
	$(COMPAT_T_CC) -include ringpoll_compat.h $< $(B)/libringpoll.a \
		-luring -lpthread -o $@

$(B)/tests/compat-late: tests/compat/forms.c include/ringpoll_compat.h \
		$(B)/libringpoll.a
	@mkdir -p $(dir $@)
	$(COMPAT_T_CC) -DT_LATE $< $(B)/libringpoll.a -luring -lpthread -o $@

$(B)/tests/compat-noclose: tests/compat/forms.c include/ringpoll_compat.h \
		$(B)/libringpoll.a
	@mkdir -p $(dir $@)
	$(COMPAT_T_CC) -DT_LATE -DRINGPOLL_NO_CLOSE_MACRO $< \
		$(B)/libringpoll.a -luring -lpthread -o $@

$(B)/tests/rp-unit: $(TEST_SRCS) tests/unit/t_util.h $(B)/libringpoll.a
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) $(CHECK_CFLAGS) -Itests/unit $(TEST_SRCS) \
		$(B)/libringpoll.a -luring $(CHECK_LIBS) -lpthread -o $@

# The conformance suite, once against the kernel's epoll and once against
# rp_epoll_* through ringpoll_compat.h.
$(B)/tests/epoll-kernel: $(EPOLL_T_DEPS)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 -g \
		$(SAN_CFLAGS) $(CHECK_CFLAGS) -Itests/epoll $(EPOLL_T_SRCS) \
		$(CHECK_LIBS) -lpthread -o $@

$(B)/tests/epoll-rp: $(EPOLL_T_DEPS) $(B)/libringpoll.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -DRP_T_COMPAT -Wall -Wextra -Werror \
		-O1 -g $(SAN_CFLAGS) $(CHECK_CFLAGS) -Iinclude -Itests/epoll \
		$(EPOLL_T_SRCS) $(B)/libringpoll.a -luring $(CHECK_LIBS) \
		-lpthread -o $@

$(B)/readme_example: README.md $(B)/libringpoll.a
	@mkdir -p $(dir $@)
	tools/readme-example README.md > $(B)/readme_example.c
	$(CC) -std=gnu11 -Wall -Wextra -Werror -Iinclude $(SAN_CFLAGS) \
		$(B)/readme_example.c $(B)/libringpoll.a -luring -o $@

# The examples (examples/), built against this tree and run each with a
# bounded self-test on 127.0.0.1. epoll-server is built twice from the same
# file: with ringpoll_compat.h (io_uring) and without (the kernel's epoll).
EX_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -O1 -g $(SAN_CFLAGS) -Iinclude
EX_LIBS = $(B)/libringpoll.a -luring -lpthread
EXAMPLES := $(B)/examples/echo $(B)/examples/echo-server \
	$(B)/examples/epoll-server $(B)/examples/epoll-server-kernel \
	$(B)/examples/mixed-uring

$(B)/examples/%: examples/%.c examples/selftest.h $(B)/libringpoll.a
	@mkdir -p $(dir $@)
	$(CC) $(EX_CFLAGS) $< $(EX_LIBS) -o $@

$(B)/examples/epoll-server: examples/epoll-server.c examples/selftest.h \
		$(B)/libringpoll.a
	@mkdir -p $(dir $@)
	$(CC) $(EX_CFLAGS) -include ringpoll_compat.h $< $(EX_LIBS) -o $@

$(B)/examples/epoll-server-kernel: examples/epoll-server.c \
		examples/selftest.h
	@mkdir -p $(dir $@)
	$(CC) $(EX_CFLAGS) $< -lpthread -o $@

check-examples: $(EXAMPLES)
	$(T) example-echo 60 $(B)/examples/echo
	$(T) example-echo-completion 60 $(B)/examples/echo completion
	$(T) example-echo-server 60 $(B)/examples/echo-server --self-test
	$(T) example-echo-server-completion 60 \
		$(B)/examples/echo-server --completion --self-test
	for v in epoll-server:io_uring epoll-server-kernel:eventpoll; do \
		$(T) example-$${v%:*} 60 sh -c \
			'"$$1" --self-test > "$$1.out"; rc=$$?; cat "$$1.out"; \
			 [ $$rc = 0 ] && grep -q "epoll fd anon_inode:\[$$2\]" \
				"$$1.out"' sh $(B)/examples/$${v%:*} $${v#*:}; \
	done
	$(T) example-mixed-uring 60 $(B)/examples/mixed-uring --self-test

# make install into a temporary PREFIX, used from there (the launcher, the
# library through pkg-config, shared and static, the man pages), then make
# uninstall, which must leave nothing.
check-install: all $(B)/tests/epoll-probe
	MAKE="$(MAKE)" EXTRA_CFLAGS="$(SAN_CFLAGS)" \
		$(T) check-install 900 tests/install/check.sh $(B)

# The conformance suite K/R/P: on the kernel's epoll, on rp_epoll_*, and
# the kernel build under the preload.
check-conformance: $(B)/tests/epoll-kernel $(B)/tests/epoll-rp \
		$(B)/ringpoll-run $(B)/libringpoll-preload.so
	$(T) epoll-kernel 300 $(B)/tests/epoll-kernel
	$(T) epoll-rp 300 $(B)/tests/epoll-rp
	RINGPOLL_T_PRELOAD=1 ASAN_OPTIONS=verify_asan_link_order=0 \
		$(T) epoll-preload 300 $(B)/ringpoll-run $(B)/tests/epoll-kernel
	RINGPOLL_T_PRELOAD=1 RINGPOLL_COMPLETION=1 \
		ASAN_OPTIONS=verify_asan_link_order=0 \
		$(T) epoll-completion 300 $(B)/ringpoll-run \
		$(B)/tests/epoll-kernel

# tests/preload/cmode.c natively (the kernel's answers), under the preload,
# and under the preload in the completion mode (issue 15): the same
# assertions for all three.
check-cmode: $(B)/tests/cmode $(B)/ringpoll-run $(B)/libringpoll-preload.so
	$(T) cmode-kernel 300 $(B)/tests/cmode
	ASAN_OPTIONS=verify_asan_link_order=0 \
		$(T) cmode-preload 300 $(B)/ringpoll-run $(B)/tests/cmode
	RINGPOLL_COMPLETION=1 ASAN_OPTIONS=verify_asan_link_order=0 \
		$(T) cmode-completion 300 $(B)/ringpoll-run $(B)/tests/cmode

# The completion runs above prove nothing if the mode never engaged: one
# process (CK_FORK=no) runs cmode's echo cases in the mode, and its stats
# line must count completion sockets (cs_sockets=N, N > 0).
check-cmode-engaged: $(B)/tests/cmode $(B)/ringpoll-run \
		$(B)/libringpoll-preload.so
	RINGPOLL_COMPLETION=1 RINGPOLL_STATS=1 CK_FORK=no CK_RUN_CASE=echo \
		ASAN_OPTIONS=verify_asan_link_order=0 \
		$(T) cmode-engaged 300 sh -c \
		'"$$1" "$$2" 2> "$$2.stats"; rc=$$?; cat "$$2.stats"; \
		 [ $$rc = 0 ] || exit $$rc; \
		 grep -Eq "^ringpoll-stats .* cs_sockets=[1-9]" "$$2.stats" \
			&& exit 0; \
		 echo "cmode-engaged: no ringpoll-stats line with" \
			"cs_sockets > 0: the completion mode did not engage"; \
		 exit 1' sh $(B)/ringpoll-run $(B)/tests/cmode

check-unit: $(B)/tests/rp-unit
	$(T) rp-unit 600 $(B)/tests/rp-unit

# The README's commands are real: each command in its ```sh blocks, and
# each `make TARGET` it names, checked without running anything long
# (tests/readme/check.sh says how).
check-readme: all
	MAKE="$(MAKE)" EXTRA_CFLAGS="$(SAN_CFLAGS)" \
		$(T) check-readme 600 tests/readme/check.sh $(B)

# The suite: the README's example, the conformance suite, the shim's
# checks and the unit tests, each under a time limit.
check-run: $(B)/tests/rp-unit $(B)/readme_example $(B)/tests/epoll-kernel \
		$(B)/tests/epoll-rp $(B)/ringpoll-run $(B)/libringpoll-preload.so \
		$(B)/tests/seccomp-run $(B)/tests/epoll-probe \
		$(B)/tests/epoll-probe-rp $(B)/tests/relisten $(COMPAT_T_BINS) \
		$(B)/tests/cmode
	for t in $(COMPAT_T_BINS); do $(T) compat-$$(basename $$t) 60 $$t; done
	$(T) readme-example 60 $(B)/readme_example
	$(T) readme-example-completion 60 $(B)/readme_example completion
	$(MAKE) check-conformance
	$(MAKE) check-cmode
	$(MAKE) check-cmode-engaged
	ASAN_OPTIONS=verify_asan_link_order=0 \
		$(T) preload-checks 600 tests/preload/check.sh $(B)
	$(MAKE) check-unit
	$(MAKE) check-man
	$(MAKE) check-examples
	$(MAKE) check-install
	$(MAKE) check-readme

# The same suite under AddressSanitizer and UBSan, in its own build tree.
check-asan:
	$(MAKE) B=build/asan CFLAGS="-O1 -g" \
		SAN_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		check-run

# ThreadSanitizer on the suites with threads: the conformance suite's
# threads, nesting, signals, waits and fork, the loop's cross-thread wake,
# and cmode in the completion mode.
TSAN_SUITES := threads epollfd deviations signals wait fork host pollable rawclose \
	taskwork
check-tsan:
	$(MAKE) B=build/tsan CFLAGS="-O1 -g" SAN_CFLAGS="-fsanitize=thread" \
		build/tsan/tests/epoll-rp build/tsan/tests/rp-unit \
		build/tsan/tests/cmode build/tsan/libringpoll-preload.so \
		build/tsan/ringpoll-run
	for s in $(TSAN_SUITES); do \
		TSAN_OPTIONS=halt_on_error=1 CK_RUN_SUITE=$$s $(T) \
			tsan-epoll-rp-$$s 300 build/tsan/tests/epoll-rp || exit 1; \
	done
	TSAN_OPTIONS=halt_on_error=1 CK_RUN_SUITE=loop $(T) tsan-rp-unit-loop \
		300 build/tsan/tests/rp-unit
	# The completion mode: threads reading one socket, second waiters,
	# hand-offs, writes from other threads (cmode, all of it).
	RINGPOLL_COMPLETION=1 TSAN_OPTIONS=halt_on_error=1 $(T) \
		tsan-cmode-completion 300 build/tsan/ringpoll-run \
		build/tsan/tests/cmode

# valgrind: Check's fork mode off so leaks are seen in one process. The
# conformance suites where one thread sleeps in io_uring_enter while another
# must run are left out: valgrind runs one thread at a time and does not
# let the other in (see README, Tests).
VALGRIND_SUITES := create ctl_errors badptr lt et oneshot flags pipes sockets \
	fdtypes close fork
VALGRIND := valgrind -q --error-exitcode=1 --leak-check=full \
	--suppressions=tests/valgrind.supp \
	--errors-for-leak-kinds=definite
check-valgrind: $(B)/tests/rp-unit $(B)/tests/epoll-rp check-valgrind-cmode
	CK_FORK=no RP_T_VALGRIND=1 timeout 1200 $(VALGRIND) $(B)/tests/rp-unit
	for s in $(VALGRIND_SUITES); do \
		CK_FORK=no CK_RUN_SUITE=$$s timeout 600 \
			$(VALGRIND) $(B)/tests/epoll-rp || exit 1; \
	done

# cmode's cases without a peer thread, natively, under the preload and in
# the completion mode. The others cannot run under valgrind: it runs one
# thread at a time, and a thread asleep in io_uring_enter keeps the peer
# thread from ever sending (they fail under the plain preload too).
VALGRIND_CMODE_CASES := shutdown close flags write
check-valgrind-cmode: $(B)/tests/cmode $(B)/ringpoll-run \
		$(B)/libringpoll-preload.so
	for c in $(VALGRIND_CMODE_CASES); do \
		for pre in "" "$(B)/ringpoll-run" \
			   "env RINGPOLL_COMPLETION=1 $(B)/ringpoll-run"; do \
			echo "check-valgrind-cmode: $$c $${pre:-natively}"; \
			CK_FORK=no CK_RUN_CASE=$$c timeout 600 $$pre \
				$(VALGRIND) $(B)/tests/cmode || exit 1; \
		done; \
	done

# Real servers (redis, nginx, memcached, Python asyncio) natively and under
# ringpoll-run; installs them first when missing.
check-integration: $(B)/ringpoll-run $(B)/libringpoll-preload.so
	$(T) integration 1200 tests/integration/run

# The benchmark, on a tiny matrix: it runs, it checks, it refuses bad input.
check-bench: $(BENCH_BIN) $(B)/ringpoll-run $(B)/libringpoll-preload.so
	$(T) bench-smoke 600 tests/bench/smoke.sh $(B)

# 10,000 connections through epoll, rp_epoll_* and the preload.
check-soak: $(BENCH_BIN) $(B)/ringpoll-run $(B)/libringpoll-preload.so
	$(T) soak 600 tests/soak/soak.sh $(B)

# The same soak built with AddressSanitizer: LeakSanitizer checks every
# server at exit. The RSS bound is looser: ASan's allocator quarantines
# freed memory. Fewer connections: what LeakSanitizer checks does not need
# 10,000 (check-soak has them), and its check at exit stops every thread,
# which on a loaded machine took minutes for a server that had held 10,000.
LSAN_SOAK_CONNS ?= 2000
check-soak-lsan:
	$(MAKE) B=build/lsan CFLAGS="-O1 -g" \
		SAN_CFLAGS="-fsanitize=address -fno-omit-frame-pointer" \
		build/lsan/rpbench build/lsan/ringpoll-run \
		build/lsan/libringpoll-preload.so
	ASAN_OPTIONS=detect_leaks=1:verify_asan_link_order=0 \
		SOAK_RSS_KB=65536 SOAK_CONNS=$(LSAN_SOAK_CONNS) \
		$(T) soak-lsan 900 tests/soak/soak.sh build/lsan

# make check: the stages one by one through tools/check-driver, each
# STAGE:SECONDS under a hard limit, in its own session, its output in
# build/check-logs/STAGE.log; a progress line per stage, the failing cases,
# and last the line "N passed, N failed, N skipped". V=1 shows all output.
CHECK_STAGES := check-deps:1200 check-harness:180 check-run:900 \
	check-asan:1500 check-tsan:900 fuzz-check:400 check-bench:600 \
	check-integration:1300 check-soak:600 check-soak-lsan:900
check:
	@MAKE="$(MAKE)" tools/check-driver $(CHECK_STAGES)

# Unit tests, the conformance suite K/R/P (and in the completion mode), and
# cmode's three runs, for development.
check-quick:
	@MAKE="$(MAKE)" tools/check-driver check-unit:300 check-conformance:600 \
		check-cmode:300 check-cmode-engaged:300

# The harness checks itself: the driver and t-run on tests/harness/'s
# fixture count, name failures, stop a hang and leave nothing running.
check-harness:
	$(T) harness-selftest 120 tests/harness/selftest.sh

# Everything make check installs, before the first stage (SKIP_INSTALL=1:
# nothing; the tests that need a missing package skip).
check-deps:
	tools/install-deps gnuplot-nox
	tests/integration/install-servers


# tools/bench/demo is python3: a minimal image may lack it.
demo: deps
	@tools/install-deps python3
	$(MAKE) $(B)/readme_example
	$(B)/readme_example
	$(MAKE) demo-run

# What `make install` puts in place is built for its own PREFIX, not for
# the one of an earlier `make`: the launcher knows its LIBDIR, ringpoll.pc
# its paths. $(B)/install/dirs records them and changes, so that these are
# rebuilt, only when they do.
INSTALL_DIRS := $(PREFIX) $(BINDIR) $(LIBDIR) $(INCLUDEDIR) $(MANDIR) $(VERSION)

$(B)/install/dirs: FORCE
	@mkdir -p $(dir $@)
	@echo '$(INSTALL_DIRS)' | cmp -s - $@ || echo '$(INSTALL_DIRS)' > $@

$(B)/install/ringpoll-run: tools/ringpoll-run.c $(B)/install/dirs
	$(CC) $(RUN_CFLAGS) $< -o $@

$(B)/install/ringpoll.pc: tools/ringpoll.pc.in $(B)/install/dirs
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
		$< > $@

HEADERS := include/ringpoll.h include/ringpoll_epoll.h \
	include/ringpoll_compat.h
MAN_SRCS := $(wildcard man/man1/*.1 man/man3/*.3 man/man7/*.7)
# The other names of a section 3 page (NAME:PAGE): .so links, so that
# `man NAME` finds every exported symbol (check-man checks it).
MAN3_LINKS := rp_loop_free:rp_loop_new rp_loop_run_once:rp_loop_run \
	rp_loop_stop:rp_loop_run rp_loop_wake:rp_loop_run \
	rp_loop_ring_info:rp_loop_stats rp_loop_model:rp_loop_stats \
	rp_loop_now_ms:rp_loop_stats rp_timer_cancel:rp_timer_start \
	rp_source_close:rp_source_new rp_source_fd:rp_source_new \
	rp_source_timeout:rp_source_new rp_cancel:rp_source_new \
	rp_write_with:rp_read_with rp_connect:rp_accept rp_recv:rp_accept \
	rp_send:rp_accept rp_read:rp_accept rp_write:rp_accept \
	rp_epoll_create1:rp_epoll_create rp_epoll_pwait:rp_epoll_wait \
	rp_epoll_pwait2:rp_epoll_wait rp_epoll_is_ring:rp_epoll_stats \
	rp_ppoll:rp_poll rp_select:rp_poll rp_pselect:rp_poll
MAN_LINK_FILES := $(foreach l,$(MAN3_LINKS),\
	man3/$(firstword $(subst :, ,$(l))).3)
MAN_FILES := $(MAN_SRCS:man/%=%) $(MAN_LINK_FILES)

# The man tree as it is installed: the pages and their links.
$(B)/man/.stamp: $(MAN_SRCS) Makefile
	@rm -rf $(B)/man
	@mkdir -p $(B)/man/man1 $(B)/man/man3 $(B)/man/man7
	@for f in $(MAN_SRCS); do cp $$f $(B)/$$f || exit 1; done
	@for l in $(MAN3_LINKS); do \
		echo ".so man3/$${l#*:}.3" > $(B)/man/man3/$${l%:*}.3 || \
			exit 1; \
	done
	@touch $@

# Every page formats without a warning; every exported symbol has one.
check-man: $(B)/man/.stamp
	$(T) check-man 300 tests/man/check.sh $(B)/man lib/ringpoll.map

D := $(DESTDIR)

install: all $(B)/install/ringpoll.pc $(B)/install/ringpoll-run \
		$(B)/man/.stamp
	install -d $(D)$(INCLUDEDIR) $(D)$(LIBDIR)/pkgconfig $(D)$(BINDIR) \
		$(D)$(MANDIR)/man1 $(D)$(MANDIR)/man3 $(D)$(MANDIR)/man7
	install -m 644 $(HEADERS) $(D)$(INCLUDEDIR)/
	install -m 644 $(B)/libringpoll.a $(D)$(LIBDIR)/
	install -m 755 $(B)/libringpoll.so \
		$(D)$(LIBDIR)/libringpoll.so.$(VERSION)
	ln -sf libringpoll.so.$(VERSION) \
		$(D)$(LIBDIR)/libringpoll.so.$(SOMAJOR)
	ln -sf libringpoll.so.$(SOMAJOR) $(D)$(LIBDIR)/libringpoll.so
	install -m 644 $(B)/install/ringpoll.pc $(D)$(LIBDIR)/pkgconfig/
	install -m 755 $(B)/libringpoll-preload.so $(D)$(LIBDIR)/
	install -m 755 $(B)/install/ringpoll-run $(D)$(BINDIR)/
	install -m 644 $(B)/man/man1/*.1 $(D)$(MANDIR)/man1/
	install -m 644 $(B)/man/man3/*.3 $(D)$(MANDIR)/man3/
	install -m 644 $(B)/man/man7/*.7 $(D)$(MANDIR)/man7/
	@echo "installed in $(D)$(PREFIX); if $(LIBDIR) is not in the" \
		"loader's path, run ldconfig or set LD_LIBRARY_PATH=$(LIBDIR)"

# Removes what install put in place, and nothing else; the directories
# stay (they may hold other files).
uninstall:
	rm -f $(addprefix $(D)$(INCLUDEDIR)/,$(notdir $(HEADERS)))
	rm -f $(D)$(LIBDIR)/libringpoll.a $(D)$(LIBDIR)/libringpoll.so \
		$(D)$(LIBDIR)/libringpoll.so.$(SOMAJOR) \
		$(D)$(LIBDIR)/libringpoll.so.$(VERSION) \
		$(D)$(LIBDIR)/libringpoll-preload.so \
		$(D)$(LIBDIR)/pkgconfig/ringpoll.pc $(D)$(BINDIR)/ringpoll-run
	rm -f $(addprefix $(D)$(MANDIR)/,$(MAN_FILES))

format:
	clang-format -i include/*.h lib/*.c lib/*.h tests/unit/*.c tests/unit/*.h

clean:
	rm -rf build
