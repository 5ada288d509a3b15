// A client that wsbridge closes while it is still sending gets the close code and reason, not
// 1006: the socket lingers after the close frame (shard/lingering_close.hpp), so the client's
// later bytes are read and dropped instead of being answered with a reset, which made the
// client's TCP drop the close frame it had not read yet (and the client reconnect, where 1008
// says not to). Node's `ws` as the client, sending as fast as it can.
//   WSBRIDGE_BINARY=build/release/wsbridge node --test tests/e2e/close_codes.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Bridge, freePort, removeDir, tempDir, within } from './mqtt_passthrough_support.mjs';

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
