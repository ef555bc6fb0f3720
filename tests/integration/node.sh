#!/bin/bash
# Node.js (libuv) under $RUNNER: programs whose libuv loops close their epoll
# fds with syscall(SYS_close), behind the shim's back (execSync's private
# loop, worker_threads' loops). They hung at 100% CPU under the shim when
# the number came back as another fd. Each must finish within its bound and
# print its result; under the launcher RINGPOLL_STATS=1 must show io_uring.
IT_NAME=node
. "$(dirname "$0")/lib.sh"
M=$(mode_label)
JS=$(cd "$(dirname "$0")/node" && pwd)

# shellcheck disable=SC2086
check "$M: execSync, then a net server: 10 round trips" \
    bash -c "timeout -k 5 30 $RUNNER node '$JS/execsync-then-listen.js' |
        grep -qx '10 round trips ok'"
# shellcheck disable=SC2086
check "$M: 4 worker_threads, each a loop of its own, echo through the main one" \
    bash -c "N=2 W=4 timeout -k 5 30 $RUNNER node '$JS/node-workers.js' |
        grep -qx 'workers ok,ok,ok,ok'"
if [ -n "$RUNNER" ]; then
    # shellcheck disable=SC2086
    check "$M: RINGPOLL_STATS=1 says node's epoll ran on io_uring" \
        bash -c "RINGPOLL_STATS=1 timeout -k 5 30 $RUNNER node \
            '$JS/execsync-then-listen.js' 2>&1 >/dev/null |
            grep -q 'prog=node backend=io_uring'"
fi
done_testing
