// node echo-server.js PORT: a net echo server that keeps half-open
// connections (allowHalfOpen): at the client's EOF it ends its side after
// the echo. Prints "listening" when it accepts; exits 0 on SIGTERM.
const net = require('net');
const s = net.createServer({ allowHalfOpen: true }, c => {
  c.on('data', d => { if (!c.write(d)) { c.pause(); c.once('drain', () => c.resume()); } });
  c.on('end', () => c.end());
  c.on('error', () => c.destroy());
});
s.listen(+process.argv[2], '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => { s.close(); process.exit(0); });
