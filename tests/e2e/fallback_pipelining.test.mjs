// Fallback requests framed as odd or hostile clients frame them. Requests pipelined behind one
// whose answer the server holds (a long poll, a POST answered by the session's shard): each
// waits in the socket until the one before is answered, then is served in order
// (libwebsockets 4.1.6 alone read the next head into the held request's header table and
// completed neither, so the connection hung for good). Header forms the framing rule serves
// ("Content-Length: 5 ", "5, 5", a Last-Event-ID with blanks) are read as it reads them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Bridge, freePort, tempDir, removeDir, sleep } from './mqtt_passthrough_support.mjs';
import { request, encodeBody, decodeBody } from './fallback_support.mjs';
import { RawConnection } from './proxy_support.mjs';

let dir;
let bridge;
let port;

before(async () => {
  dir = tempDir();
  port = await freePort();
  bridge = new Bridge(dir, port, `
[fallback]
poll_timeout = "2s"
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[routes]]
path = "/echo"
adapter = "echo"
`);
  await bridge.start();
});

after(async () => {
  await bridge?.stop();
  if (dir) removeDir(dir);
});

// Sends `bytes` in one write and reads `count` responses (proxy_support's RawConnection), each
// with the time it was complete.
async function pipeline(bytes, count, timeoutMs = 6000) {
  const conn = await RawConnection.open(port);
  try {
    conn.write(bytes);
    const responses = [];
    for (let i = 0; i < count; ++i) {
      responses.push({ ...(await conn.response({ timeoutMs })), at: Date.now() });
    }
    return responses;
  } finally {
    conn.socket.destroy();
  }
}

async function openSession() {
  const opened = await request(port, 'GET', '/_wsbridge/poll/echo');
  assert.equal(opened.status, 200);
  return JSON.parse(decodeBody(opened.body).records[0].payload).session;
}

test('a request behind a held poll is served once the poll is answered', async () => {
  const tok = encodeURIComponent(await openSession());
  const started = Date.now();
  const answers = pipeline(
    `GET /_wsbridge/poll/echo?s=${tok}&last=0 HTTP/1.1\r\nHost: x\r\n\r\n` +
    'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 2);
  await sleep(300);
  const posted = await request(port, 'POST', `/_wsbridge/send/echo?s=${tok}`,
    { body: encodeBody(1, [{ payload: 'held' }]) });
  assert.equal(posted.status, 200);
  const [poll, health] = await answers;
  assert.equal(poll.status, 200);
  assert.deepEqual(decodeBody(poll.body).records.map((r) => r.payload.toString()), ['held']);
  assert.equal(health.status, 200);
  assert.ok(health.at - started < 1500, 'served right after the poll, not at a timeout');
});

test('POSTs and a poll pipelined in one write are each answered, in order, once', async () => {
  const tok = encodeURIComponent(await openSession());
  const postOf = (first, payload) => {
    const body = encodeBody(first, [{ payload }]);
    return Buffer.concat([Buffer.from(`POST /_wsbridge/send/echo?s=${tok} HTTP/1.1\r\nHost: x\r\n` +
      `Content-Length: ${body.length}\r\n\r\n`), body]);
  };
  const [first, second, poll] = await pipeline(Buffer.concat([
    postOf(1, 'one'), Buffer.from('\r\n'), postOf(2, 'two'),
    Buffer.from(`GET /_wsbridge/poll/echo?s=${tok}&last=0 HTTP/1.1\r\nHost: x\r\n\r\n`),
  ]), 3);
  assert.deepEqual([first.status, JSON.parse(first.body).next], [200, 2]);
  assert.deepEqual([second.status, JSON.parse(second.body).next], [200, 3]);
  assert.equal(poll.status, 200);
  assert.deepEqual(decodeBody(poll.body).records.map((r) => r.payload.toString()), ['one', 'two']);
});

test('a POST whose Content-Length is written loosely is read as the framing rule serves it', async () => {
  const tok = encodeURIComponent(await openSession());
  let next = 1;
  const forms = [(n) => `Content-Length: ${n} `, (n) => `Content-Length:\t${n}`,
    (n) => `Content-Length: ${n}, ${n}`, (n) => `Content-Length: ${n}\r\nContent-Length: ${n}`];
  for (const form of forms) {
    const body = encodeBody(next, [{ payload: `n${next}` }]);
    const [answer] = await pipeline(Buffer.concat([
      Buffer.from(`POST /_wsbridge/send/echo?s=${tok} HTTP/1.1\r\nHost: x\r\n${form(body.length)}\r\n\r\n`),
      body]), 1);
    assert.equal(answer.status, 200, `${form(body.length)}: ${answer.body}`);
    next += 1;
    assert.equal(JSON.parse(answer.body).next, next);
  }
  const all = await request(port, 'GET', `/_wsbridge/poll/echo?s=${tok}&last=0`);
  assert.equal(decodeBody(all.body).records.length, 4);
  // That answer lost: the client resumes after the second. Blanks around the id are not part of it.
  const polled = await request(port, 'GET', `/_wsbridge/poll/echo?s=${tok}`,
    { headers: { 'Last-Event-ID': '2 ' } });
  assert.equal(polled.status, 200);
  assert.deepEqual(decodeBody(polled.body).records.map((r) => r.payload.toString()), ['n3', 'n4']);
});
