// After a child (spawn), execSync runs its own libuv loop and closes its epoll fd with
// syscall(SYS_close): the shim never sees the instance go. The next fd
// with that number that the main loop registers (a socket here) is taken
// for a nested rp instance, and the main loop's epoll_wait spins.
// node execsync-then-listen.js  -> "10 round trips ok" at once (exit 0)
// build/ringpoll-run node ...   -> hangs at 100% CPU (2/2 runs)
const cp = require('child_process'), net = require('net');
cp.spawn('true').on('close', () => {
cp.execSync('true');
const s = net.createServer(c => c.end('x')).listen(0, '127.0.0.1', () => {
  let done = 0;
  for (let i = 0; i < 10; i++)
    net.connect(s.address().port, '127.0.0.1').on('data', () => {
      if (++done === 10) { console.log('10 round trips ok'); s.close(); }
    });
});
});
