// N=2 W=4 node node-workers.js: "workers ok,ok,ok,ok"; under build/ringpoll-run
// it hangs at 100% CPU (each worker loop closes its epoll fd with
// syscall(SYS_close); see raw-close-epfd.c).
const net = require('net'), { Worker, isMainThread, parentPort } = require('worker_threads');
const N = +process.env.N || 1, W = +process.env.W || 1;
if (!isMainThread) {
  parentPort.once('message', ({port, n}) => {
    let done = 0;
    for (let i = 0; i < n; i++) {
      const c = net.connect(port, '127.0.0.1');
      c.on('data', d => c.end());
      c.on('close', () => { if (++done === n) parentPort.postMessage('ok'); });
      c.write('x');
    }
  });
  return;
}
const srv = net.createServer(s => s.pipe(s));
srv.listen(0, '127.0.0.1', async () => {
  const port = srv.address().port; const ws = [];
  for (let w = 0; w < W; w++) ws.push(new Promise((res, rej) => {
    const wk = new Worker(__filename); wk.on('message', m => { wk.terminate(); res(m); }); wk.on('error', rej);
    wk.postMessage({port, n: N});
  }));
  console.log('workers', (await Promise.all(ws)).join(',')); srv.close();
});
