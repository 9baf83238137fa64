// A CPU profile of the Worker in workerd, taken through the inspector `wrangler dev` opens
// (`--inspector-port`), while you send it load (scripts/bench-edge-vs-plain.sh, rampart-load,
// wrk). Prints the functions with the most samples of their own, and writes the whole profile
// (open it in Chrome DevTools' Performance panel) to edge-profile.cpuprofile.
//
//   node scripts/profile-edge.cjs <inspector port> [seconds, default 10]
//
// Rust functions show under their symbol names (the wasm keeps its name section); the glue's
// calls into the runtime show as shim.js lines and as the runtime's own names (get, set,
// decode, Response, Headers).
const path = require('path');
const WebSocket = require(path.join(__dirname, '..', 'node_modules', 'ws'));

const [port, seconds = '10'] = process.argv.slice(2);
if (!port) {
  console.error('usage: node scripts/profile-edge.cjs <inspector port> [seconds]');
  process.exit(2);
}

async function main() {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
  let next = 0;
  const waiting = new Map();
  const call = (method, params = {}) =>
    new Promise((resolve) => {
      const id = ++next;
      waiting.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  socket.on('message', (data) => {
    const message = JSON.parse(data);
    if (waiting.has(message.id)) {
      waiting.get(message.id)(message.result);
      waiting.delete(message.id);
    }
  });
  await new Promise((resolve) => socket.on('open', resolve));
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: 100 });
  await call('Profiler.start');
  console.error(`profiling for ${seconds} s: send the load now`);
  await new Promise((resolve) => setTimeout(resolve, Number(seconds) * 1000));
  const { profile } = await call('Profiler.stop');
  require('fs').writeFileSync('edge-profile.cpuprofile', JSON.stringify(profile));
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const own = new Map();
  for (const id of profile.samples) {
    const frame = nodes.get(id).callFrame;
    const name = `${frame.functionName || '(anonymous)'} ${frame.url.split('/').pop()}:${frame.lineNumber + 1}`;
    own.set(name, (own.get(name) || 0) + 1);
  }
  const total = profile.samples.length;
  for (const [name, count] of [...own].sort((a, b) => b[1] - a[1]).slice(0, 40)) {
    console.log(`${((100 * count) / total).toFixed(1).padStart(5)}%  ${name}`);
  }
  socket.close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
