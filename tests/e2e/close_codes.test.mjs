// A client that wsbridge closes while it is still sending gets the close code and reason, not
// 1006: the socket lingers after the close frame (shard/lingering_close.hpp), so the client's
// later bytes are read and dropped instead of being answered with a reset, which made the
// client's TCP drop the close frame it had not read yet (and the client reconnect, where 1008
// says not to). Node's `ws` as the client, sending as fast as it can.
//   WSBRIDGE_BINARY=build/release/wsbridge node --test tests/e2e/close_codes.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { Bridge, freePort, removeDir, sleep, tempDir, within } from './mqtt_passthrough_support.mjs';

let dir;
let bridge;

before(async () => {
  dir = tempDir();
  const port = await freePort();
  bridge = new Bridge(dir, port, `[[listeners]]
address = "127.0.0.1"
port = ${port}
[[routes]]
path = "/rate"
adapter = "echo"
rate = 2
[[routes]]
path = "/small"
adapter = "echo"
max_message_bytes = "16KiB"
`);
  await bridge.start();
});

after(async () => {
  await bridge?.stop();
  if (dir) removeDir(dir);
});

// Opens `route`, calls `flood(ws)` once open, and resolves with the close and what came back.
function closedWhileSending(route, flood) {
  return within(new Promise((resolve) => {
    const ws = new WebSocket(bridge.url(route));
    const echoes = [];
    ws.on('open', () => flood(ws));
    ws.on('message', (data) => echoes.push(data.toString()));
    ws.on('error', () => {});
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString(), echoes }));
  }), 10000, `the close of ${route}`);
}

test('over its rate limit: 1008 and the echoes of what was accepted, however fast the client sends', async () => {
  for (let round = 0; round < 20; round++) {
    const r = await closedWhileSending('/rate', (ws) => { for (let i = 0; i < 30; i++) ws.send(`m${i}`); });
    assert.deepEqual([r.code, r.reason], [1008, 'rate limit exceeded'], `round ${round + 1}: ${JSON.stringify(r)}`);
    assert.deepEqual(r.echoes, ['m0', 'm1'], `round ${round + 1}: the echoes of the accepted messages`);
  }
});

test('a message over max_message_bytes while more follow: 1009', async () => {
  for (let round = 0; round < 10; round++) {
    const r = await closedWhileSending('/small', (ws) => {
      ws.send('x'.repeat(20 * 1024));
      for (let i = 0; i < 200; i++) ws.send('y'.repeat(8 * 1024));
    });
    assert.equal(r.code, 1009, `round ${round + 1}: ${r.code} ${r.reason}`);
  }
});

// A raw client: upgrades to `route`, sends `frames` text frames in one write, and resolves once the
// server's close frame came, its socket left open (no FIN: the close lingers on wsbridge's side).
function closedButHeldOpen(port, route, frames) {
  return new Promise((resolve, reject) => {
    // (allowHalfOpen: it does not answer wsbridge's FIN with its own, as a hostile client would not)
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('connect', () => {
      const key = randomBytes(16).toString('base64');
      let bytes = Buffer.from(`GET ${route} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      for (let i = 0; i < frames; i++) {
        const mask = randomBytes(4);
        const payload = Buffer.from(`m${i}`);
        bytes = Buffer.concat([bytes, Buffer.from([0x81, 0x80 | payload.length]), mask,
          Buffer.from(payload.map((b, j) => b ^ mask[j % 4]))]);
      }
      socket.write(bytes);
    });
    socket.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.includes(Buffer.from([0x88]))) resolve({ socket, status: got.toString('latin1').split('\r\n')[0] });
    });
  });
}

// Lingering keeps the connection's place under the connection limits: a client closed at once
// (here by a rate limit) opened connection after connection while the closed ones lingered, each
// holding a descriptor, past max_connections_per_ip (a probe used up the open-file limit so).
// lws 4.1.6 answered 1012, 1013 and 1014 (registered after it was written; wsbridge sends 1012
// and 1013 itself) with 1002 and the client's own reason (a hostile probe).
test('a client\'s close is answered with its own code, the registered 1012-1014 included', async () => {
  for (const code of [1000, 1001, 1003, 1007, 1008, 1011, 1012, 1013, 1014, 3000, 4999]) {
    const answered = await within(new Promise((resolve, reject) => {
      const ws = new WebSocket(bridge.url('/small'));
      ws.on('open', () => ws.close(code, `bye ${code}`));
      ws.on('error', reject);
      ws.on('close', (got, reason) => resolve([got, reason.toString()]));
    }), 5000, `the answer to ${code}`);
    assert.deepEqual(answered, [code, `bye ${code}`]);
  }
  assert.doesNotMatch(bridge.log, /code=1002/, 'logged as the client\'s code');
});

test('a lingering socket still counts under max_connections_per_ip', async () => {
  const sub = path.join(dir, 'limited');
  mkdirSync(sub, { recursive: true });
  const port = await freePort();
  const limited = new Bridge(sub, port, `[limits]
max_connections_per_ip = 2
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[routes]]
path = "/rate"
adapter = "echo"
rate = 2
`);
  await limited.start();
  const held = [];
  try {
    for (let i = 0; i < 2; i++) {
      const c = await within(closedButHeldOpen(port, '/rate', 30), 5000, 'a closed connection');
      assert.match(c.status, / 101 /);
      held.push(c.socket);
    }
    // Both places are taken by the lingering sockets: a third connection is refused.
    const status = () => new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/rate`);
      ws.on('open', () => { ws.close(); resolve(101); });
      ws.on('unexpected-response', (_q, res) => { res.resume(); resolve(res.statusCode); });
      ws.on('error', () => resolve(0));
    });
    assert.equal(await status(), 503, 'a third connection while two linger');
    // The lingers end (2 s): the places are free again.
    await sleep(2500);
    assert.equal(await status(), 101, 'a connection after the lingers');
  } finally {
    for (const s of held) s.destroy();
    await limited.stop();
  }
});
