#!/bin/bash
# memcached (4 worker threads, libevent on epoll) under $RUNNER: a python3
# client does set/get/delete on a few hundred keys over several connections
# and checks every value; values of 1 MiB and around it; pipelined batches
# of set (with and without noreply), gets/cas, append/prepend and incr,
# every reply and value checked; under the launcher also proof of io_uring,
# RINGPOLL_STATS=1 counters and RINGPOLL_DISABLE=1 pass-through; in the
# completion mode, that the mode took the server's sockets (check_cs).
IT_NAME=memcached
. "$(dirname "$0")/lib.sh"
M=$(mode_label)
NKEYS=${MEMCACHED_KEYS:-400}

cat >"$TMPD/client.py" <<'EOF'
import os, random, socket, sys, threading

port, nkeys, nconn = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
what = sys.argv[4] if len(sys.argv) > 4 else "mixed"
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

def same(what, got, want):
    if got == want:
        return True
    if got is None:
        errors.append("%s: missing, want %d bytes" % (what, len(want)))
        return False
    m = min(len(got), len(want))
    d = next((i for i in range(m) if got[i] != want[i]), m)
    errors.append("%s: %d bytes, want %d, first difference at %d" % (what, len(got), len(want), d))
    return False

def big(wid, keys):
    # values of 1 MiB and around it (the server runs with -I 2m), each read
    # back alone and then all in one multi-get
    try:
        rnd = random.Random(100 + wid)
        c = Conn()
        vals = {}
        sizes = [(1 << 20) - 1, 1 << 20, (1 << 20) + 1, 1000000, rnd.randint(900000, 1900000)]
        for k, n in zip(keys, sizes * (len(keys) // len(sizes) + 1)):
            v = os.urandom(n)
            vals[k] = v
            c.send(b"set %s 0 0 %d\r\n%s\r\n" % (k, n, v))
            r = c.line()
            if r != b"STORED":
                errors.append("set %r (%d bytes): %r" % (k, n, r)); return
            if not same("get %r" % k, c.get_many([k]).get(k), v):
                return
        got = c.get_many(list(vals))
        for k in vals:
            if not same("multi-get %r" % k, got.get(k), vals[k]):
                return
        c.send(b"".join(b"delete %s\r\n" % k for k in vals))
        for k in vals:
            r = c.line()
            if r != b"DELETED":
                errors.append("delete %r: %r" % (k, r)); return
        c.s.close()
    except Exception as e:
        errors.append("big worker %d: %r" % (wid, e))

def pipe(wid, keys):
    # one write per batch: sets (half noreply), then gets, gets/cas, append,
    # prepend, incr; a thread sends while this one reads the replies
    try:
        rnd = random.Random(200 + wid)
        c = Conn()
        def send_all(data):
            t = threading.Thread(target=c.send, args=(data,)); t.start()
            return t
        vals = {k: os.urandom(rnd.choice([0, rnd.randint(1, 200), rnd.randint(200, 20000)])) for k in keys}
        reply_keys = [k for i, k in enumerate(keys) if i % 2 == 0]
        t = send_all(b"".join(b"set %s 7 0 %d%s\r\n%s\r\n" % (k, len(vals[k]), b"" if i % 2 == 0 else b" noreply", vals[k])
                               for i, k in enumerate(keys)))
        for k in reply_keys:
            r = c.line()
            if r != b"STORED":
                errors.append("pipelined set %r: %r" % (k, r)); t.join(); return
        t.join()
        # a get after the noreply sets: the server has handled them all
        t = send_all(b"".join(b"get %s\r\n" % k for k in keys))
        for k in keys:
            l = c.line()
            if l == b"END":
                errors.append("pipelined get %r: missing" % k); t.join(); return
            p = l.split()
            if p[:2] != [b"VALUE", k] or p[2] != b"7":
                errors.append("pipelined get %r: %r" % (k, l)); t.join(); return
            if not same("pipelined get %r" % k, c.exact(int(p[3]) + 2)[:-2], vals[k]):
                t.join(); return
            if c.line() != b"END":
                errors.append("pipelined get %r: no END" % k); t.join(); return
        t.join()
        # gets for the cas ids, then cas with them: all stored, values new
        c.send(b"gets " + b" ".join(keys) + b"\r\n")
        cas = {}
        while True:
            l = c.line()
            if l == b"END":
                break
            p = l.split()
            cas[p[1]] = int(p[4])
            c.exact(int(p[3]) + 2)
        if set(cas) != set(keys):
            errors.append("gets: %d of %d keys" % (len(cas), len(keys))); return
        new = {k: os.urandom(rnd.randint(0, 3000)) for k in keys}
        t = send_all(b"".join(b"cas %s 0 0 %d %d\r\n%s\r\n" % (k, len(new[k]), cas[k], new[k]) for k in keys))
        for k in keys:
            r = c.line()
            if r != b"STORED":
                errors.append("cas %r: %r" % (k, r)); t.join(); return
        t.join()
        # append and prepend, pipelined
        a = {k: os.urandom(rnd.randint(1, 500)) for k in keys}
        t = send_all(b"".join(b"append %s 0 0 %d\r\n%s\r\nprepend %s 0 0 %d\r\n%s\r\n"
                               % (k, len(a[k]), a[k], k, len(a[k][::-1]), a[k][::-1]) for k in keys))
        for k in keys:
            for op in ("append", "prepend"):
                r = c.line()
                if r != b"STORED":
                    errors.append("%s %r: %r" % (op, k, r)); t.join(); return
        t.join()
        got = c.get_many(keys)
        for k in keys:
            if not same("after cas/append/prepend %r" % k, got.get(k), a[k][::-1] + new[k] + a[k]):
                return
        # counters
        ck = b"ctr:%d:%d" % (os.getpid(), wid)
        c.send(b"set %s 0 0 1\r\n0\r\n" % ck)
        c.line()
        t = send_all(b"incr %s 3\r\n" % ck * 500)
        for i in range(500):
            r = c.line()
            if r != b"%d" % (3 * (i + 1)):
                errors.append("incr %d: %r" % (i, r)); t.join(); return
        t.join()
        c.send(b"".join(b"delete %s noreply\r\n" % k for k in keys + [ck]))
        if c.get_many(keys + [ck]):
            errors.append("keys left after delete noreply"); return
        c.s.close()
    except Exception as e:
        errors.append("pipe worker %d: %r" % (wid, e))

keys = [b"k:%d:%d" % (os.getpid(), i) for i in range(nkeys)]
f = {"mixed": worker, "big": big, "pipe": pipe}[what]
ts = [threading.Thread(target=f, args=(w, keys[w::nconn])) for w in range(nconn)]
for t in ts: t.start()
for t in ts: t.join()
if errors:
    print("\n".join(errors[:20])); sys.exit(1)
print("%s: %d keys checked over %d connections" % (what, nkeys, nconn))
EOF

start_memcached() {  # TAG [ENV=VAL...]
    local tag=$1; shift
    local user=()
    [ "$(id -u)" -eq 0 ] && user=(-u root)
    PORT=$(pick_port) || { not_ok "$M: pick a free port"; done_testing; }
    start_server "$tag" "$@" -- memcached -l 127.0.0.1 -p "$PORT" -t 4 -U 0 -m 64 -I 2m "${user[@]}"
    if wait_port "$PORT"; then
        ok "$M: $tag: memcached listens on 127.0.0.1:$PORT"
    else
        not_ok "$M: $tag: memcached listens on 127.0.0.1:$PORT"
        tail -n 30 "$TMPD/$tag.out" "$TMPD/$tag.err" | diag
        return 1
    fi
}

client() { timeout 60 "$PYTHON" "$TMPD/client.py" "$PORT" "$@"; }

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
    check "$M: 20 values of 1 MiB and around it over 4 connections, every byte" client 20 4 big
    check "$M: pipelined set/noreply/get/gets/cas/append/prepend/incr, 800 keys over 4 connections" client 800 4 pipe
    check "$M: memcached stats agree" stats_sane
    check "$M: memcached exits cleanly on SIGTERM" stopped_clean main
    check_cs "$M: the completion mode took memcached's sockets" "$TMPD/main.err"
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
