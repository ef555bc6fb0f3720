# rpbench and `make demo`'s matrix; included by the top Makefile.
#
# rpbench is built with the library's strict flags (RP_CFLAGS). The epoll
# server, tools/bench/srv_epoll.c, is compiled twice: as is, on the kernel's
# epoll, and with -include ringpoll_compat.h onto rp_epoll_*, so that the
# epoll and rp-epoll modes run the very same code.

BENCH_BIN := $(B)/rpbench
BENCH_SRCS := tools/bench/rpbench.c tools/bench/args.c tools/bench/hist.c \
	tools/bench/report.c tools/bench/server.c tools/bench/load.c \
	tools/bench/srv_epoll.c tools/bench/srv_async.c tools/bench/srv_uring.c \
	tools/bench/srv_upoll.c tools/bench/ctlbench.c
BENCH_OBJS := $(BENCH_SRCS:tools/bench/%.c=$(B)/bench/%.o) \
	$(B)/bench/srv_epoll_rp.o
BENCH_DEPS := tools/bench/bench.h $(HDRS)

.PHONY: demo-run bench-real-servers bench-ctl

$(B)/bench/%.o: tools/bench/%.c $(BENCH_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) -c $< -o $@

$(B)/bench/srv_epoll_rp.o: tools/bench/srv_epoll.c $(BENCH_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) -DRPB_ON_RING -include ringpoll_compat.h -c $< -o $@

$(BENCH_BIN): $(BENCH_OBJS) $(B)/libringpoll.a
	$(CC) $(CFLAGS) $(SAN_CFLAGS) -o $@ $(BENCH_OBJS) \
		$(B)/libringpoll.a -luring -lpthread

# The demo's matrix. DEMO_SECONDS, DEMO_ROUNDS, DEMO_CONNS, DEMO_MODES and
# DEMO_PIN tune it (tools/bench/demo --help).
demo-run: $(BENCH_BIN) $(B)/ringpoll-run $(B)/libringpoll-preload.so
	tools/bench/demo --build $(B)

bench-real-servers: $(B)/ringpoll-run $(B)/libringpoll-preload.so
	tools/bench/real-servers --build $(B)

# epoll_ctl against rp_epoll_ctl (issue 7). Pinned to CPU 0 where taskset
# exists, as the demo pins its server: a migration mid-batch is noise.
# CTL_ARGS passes options on, e.g. CTL_ARGS="--fds 1000 --rounds 9".
CTL_ARGS ?=
CTL_PIN := $(shell command -v taskset >/dev/null 2>&1 && echo taskset -c 0)
bench-ctl: $(BENCH_BIN)
	$(CTL_PIN) $(BENCH_BIN) ctl $(CTL_ARGS)

# Ring setups an epoll instance could have, measured alone (issue 12):
# wake latency of a sleeping waiter, an SQPOLL thread's idle cost.
$(B)/ringsetup: tools/bench/ringsetup.c
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) -o $@ $< -luring -lpthread

# The same, its "epoll" setup on rp_epoll_* (the header maps the names).
$(B)/ringsetup-rp: tools/bench/ringsetup.c $(B)/libringpoll.a
	@mkdir -p $(dir $@)
	$(CC) $(RP_CFLAGS) -include ringpoll_compat.h -o $@ $< \
		$(B)/libringpoll.a -luring -lpthread
