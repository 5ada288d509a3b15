// The fallback transports over https:// and wss:// with two service threads (#15, #16): a session
// opened by a long-poll over TLS and moved to a WebSocket that lands on the other thread. The
// socket and its TLS session go to the session's thread; this thread's lws closes its side of the
// same TLS session first. A hostile probe found the two overlapping: the resumed WebSocket got
// a close_notify instead of its echo, and within a few moves the process aborted in lws
// (insert_wsi's assertion: a descriptor still registered to a stale connection).
//   WSBRIDGE_BINARY=build/release/wsbridge node --test tests/e2e/fallback_tls.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import https from 'node:https';
import path from 'node:path';
import WebSocket from 'ws';
import { Bridge, freePort, removeDir, tempDir, within } from './mqtt_passthrough_support.mjs';

let dir;
let bridge;
let port;

before(async () => {
  dir = tempDir();
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '2', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  port = await freePort();
  // (log_level debug: lws tells of each socket a thread adopts from the other.)
  bridge = new Bridge(dir, port, `log_level = "debug"
[[listeners]]
address = "127.0.0.1"
port = ${port}
[listeners.tls]
cert_file = "${path.join(dir, 'cert.pem')}"
key_file = "${path.join(dir, 'key.pem')}"
[[routes]]
path = "/echo"
adapter = "echo"
`, { threads: 2 });
  await bridge.start();
});

after(async () => {
  await bridge?.stop();
  if (dir) removeDir(dir);
});

// A long-poll over https opens a session: its token.
function openPollSession() {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/_wsbridge/poll/echo', rejectUnauthorized: false,
      agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const match = /"session":"([^"]+)"/.exec(Buffer.concat(chunks).toString());
        if (res.statusCode !== 200 || !match) reject(new Error(`poll: ${res.statusCode}`));
        else resolve(match[1]);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

// The session moved to a WebSocket over wss://: its welcome, then an echo, then a clean close.
async function resumeOverWss(tok) {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/echo?_wsb=resume&s=${encodeURIComponent(tok)}&last=0`,
    { rejectUnauthorized: false });
  const messages = [];
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('message', (data) => messages.push(data.toString()));
  ws.on('error', () => {});
  await within(new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('unexpected-response', (_q, r) => reject(new Error(`resume: ${r.statusCode}`))); }),
    5000, 'the resume to open');
  ws.send('over wss');
  const deadline = Date.now() + 5000;
  while (!messages.includes('over wss') && ws.readyState === WebSocket.OPEN && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const echoed = messages.includes('over wss');
  ws.close(1000);
  const code = await within(closed, 5000, 'the close');
  return { echoed, code, welcome: messages.some((m) => m.includes('"resumed":true')) };
}

test('sessions opened over https and moved to wss://, on either service thread: every one echoes and closes cleanly', { timeout: 120000 }, async () => {
  for (let i = 0; i < 40; i++) {
    const tok = await openPollSession();
    const result = await resumeOverWss(tok);
    assert.ok(bridge.child.running, `wsbridge exited at move ${i + 1}:\n${bridge.log.slice(-2000)}`);
    assert.deepEqual(result, { echoed: true, code: 1000, welcome: true }, `move ${i + 1}`);
  }
  // Some of the moves went to the other thread (else this tested nothing).
  assert.match(bridge.log, /adopt_socket_readbuf/);
});
