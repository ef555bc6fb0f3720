#!/bin/bash
# memcached (4 worker threads, libevent on epoll) under $RUNNER: a python3
# client does set/get/delete on a few hundred keys over several connections
# and checks every value; under the launcher also proof of io_uring,
# RINGPOLL_STATS=1 counters and RINGPOLL_DISABLE=1 pass-through.
IT_NAME=memcached
. "$(dirname "$0")/lib.sh"
M=$(mode_label)
NKEYS=${MEMCACHED_KEYS:-400}

cat >"$TMPD/client.py" <<'EOF'
import os, random, socket, sys, threading

port, nkeys, nconn = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
errors = []

class Conn:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
    def send(self, data):
        self.s.sendall(data)
    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l
    def exact(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        d, self.buf = self.buf[:n], self.buf[n:]
        return d
    def get_many(self, keys):
        self.send(b"get " + b" ".join(keys) + b"\r\n")
        out = {}
        while True:
            l = self.line()
            if l == b"END":
                return out
            parts = l.split()
            if parts[0] != b"VALUE":
                raise ValueError("bad get reply %r" % l)
            out[parts[1]] = self.exact(int(parts[3]) + 2)[:-2]

def worker(wid, keys):
    try:
        rnd = random.Random(wid)
        c = Conn()
        vals = {}
        for k in keys:
            # mostly small values, some of several hundred KiB (partial writes)
            n = rnd.choice([rnd.randint(0, 100), rnd.randint(100, 8000), rnd.randint(100000, 600000)]) \
                if rnd.random() < 0.05 else rnd.randint(0, 4000)
            v = os.urandom(n)
            vals[k] = v
            c.send(b"set %s %d 0 %d\r\n%s\r\n" % (k, wid, len(v), v))
            r = c.line()
            if r != b"STORED":
                errors.append("set %r: %r" % (k, r)); return
        for k in keys:                      # one get per key
            got = c.get_many([k])
            if got.get(k) != vals[k]:
                errors.append("get %r: %d bytes, want %d" % (k, len(got.get(k) or b""), len(vals[k]))); return
        for i in range(0, len(keys), 25):   # multi-get
            ks = keys[i:i + 25]
            got = c.get_many(ks)
            for k in ks:
                if got.get(k) != vals[k]:
                    errors.append("multi-get %r differs" % k); return
        # pipelined deletes, then every key must be gone
        c.send(b"".join(b"delete %s\r\n" % k for k in keys))
        for k in keys:
            r = c.line()
            if r != b"DELETED":
                errors.append("delete %r: %r" % (k, r)); return
        got = c.get_many(keys)
        if got:
            errors.append("%d keys still there after delete" % len(got)); return
        c.s.close()
    except Exception as e:
        errors.append("worker %d: %r" % (wid, e))

keys = [b"k:%d:%d" % (os.getpid(), i) for i in range(nkeys)]
ts = [threading.Thread(target=worker, args=(w, keys[w::nconn])) for w in range(nconn)]
for t in ts: t.start()
for t in ts: t.join()
if errors:
    print("\n".join(errors[:20])); sys.exit(1)
print("%d keys set/get/multi-get/delete checked over %d connections" % (nkeys, nconn))
EOF

start_memcached() {  # TAG [ENV=VAL...]
    local tag=$1; shift
    local user=()
    [ "$(id -u)" -eq 0 ] && user=(-u root)
    PORT=$(pick_port) || { not_ok "$M: pick a free port"; done_testing; }
    start_server "$tag" "$@" -- memcached -l 127.0.0.1 -p "$PORT" -t 4 -U 0 -m 64 "${user[@]}"
    if wait_port "$PORT"; then
        ok "$M: $tag: memcached listens on 127.0.0.1:$PORT"
    else
        not_ok "$M: $tag: memcached listens on 127.0.0.1:$PORT"
        tail -n 30 "$TMPD/$tag.out" "$TMPD/$tag.err" | diag
        return 1
    fi
}

client() { timeout 60 "$PYTHON" "$TMPD/client.py" "$PORT" "$1" "$2"; }

stats_sane() {  # the server's own counters agree with what was done
    timeout 10 "$PYTHON" - "$PORT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"stats\r\n"); buf = b""
while not buf.endswith(b"END\r\n"):
    c = s.recv(65536)
    if not c: break
    buf += c
st = dict(l.split()[1:3] for l in buf.decode().splitlines() if l.startswith("STAT "))
print({k: st[k] for k in ("curr_connections", "total_connections", "cmd_get", "cmd_set", "threads")})
sys.exit(0 if int(st["cmd_set"]) > 0 and st["threads"] == "4" else 1)
EOF
}

stopped_clean() {  # TAG: SIGTERM; exit status 0
    stop_server TERM
    local rc=$?
    echo "exit status $rc"; tail -n 5 "$TMPD/$1.out" "$TMPD/$1.err"
    [ $rc -eq 0 ]
}

if start_memcached main; then
    check "$M: memcached on $( [ -n "$RUNNER" ] && echo io_uring || echo kernel epoll)" expect_backend "$SRV_PID"
    check "$M: set/get/delete $NKEYS keys over 8 connections, every value" client "$NKEYS" 8
    check "$M: set/get/delete $NKEYS keys over 1 connection, every value" client "$NKEYS" 1
    check "$M: memcached stats agree" stats_sane
    check "$M: memcached exits cleanly on SIGTERM" stopped_clean main
fi

if [ -n "$RUNNER" ]; then
    if start_memcached stats RINGPOLL_STATS=1; then
        check "$M: stats run: set/get/delete 100 keys" client 100 4
        check "$M: stats run: exits cleanly" stopped_clean stats
        check "$M: RINGPOLL_STATS=1 prints counters at exit" expect_stats "$TMPD/stats.err"
    fi
    if start_memcached disable RINGPOLL_DISABLE=1; then
        check "$M: RINGPOLL_DISABLE=1: memcached on kernel epoll" expect_epoll "$SRV_PID"
        check "$M: RINGPOLL_DISABLE=1: set/get/delete 100 keys" client 100 4
        check "$M: RINGPOLL_DISABLE=1: exits cleanly" stopped_clean disable
    fi
fi

done_testing
