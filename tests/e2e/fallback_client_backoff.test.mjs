// web/wsbridge.js' fallback transports against peers that fail in ways that once made it retry
// badly, with fallback_fake_server.mjs (no server binary): SSE streams that stall after their
// welcome (resumed every ~35 s for ever, never falling back to long-polling), empty polls
// answered at once (polled again in a tight loop), and close() during a backoff (its timer kept
// the process alive for seconds).
//   node --test tests/e2e/fallback_client_backoff.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { within } from './mqtt_passthrough_support.mjs';
import { Collector, fakeServer, sleep, waitFor } from './fallback_client_support.mjs';

// (A fake of its own per test, fakeServer: these change its behaviour and its timings.)

const sessionOf = (fake, c) => [...fake.sessions.values()].find((s) => s.conn === c.socket.session.conn);

// ----- SSE streams that stall after their welcome. The watchdog (two heartbeats plus
// transportTimeout: 800 ms here) loses each; the stable timer (5 s after a welcome) forgave
// those that lasted longer, so behind such a proxy with the bridge's defaults the stream was
// resumed every 35 s for ever. Only a stream that proved itself after its welcome (a heartbeat,
// a message) forgives now: after the retries the same session goes on over long-polls. (With
// the short timers here the stable timer never fired, and the old client closed the session,
// 1006, instead of falling back: the first test fails on it all the same.)

test('sse: streams that stall after their welcome are given up after the retries, the session goes on over long-polling', async (t) => {
  const fake = await fakeServer(t, { heartbeatS: 0.1 });
  fake.stallStreams = Infinity;
  const c = new Collector(fake.url('/echo'), { transports: ['sse', 'polling'], sessionStorage: null, transportTimeout: 600 });
  t.after(() => c.close());
  const transports = [];
  c.socket.ontransport = (info) => transports.push(info);
  assert.equal(await c.opened, 'sse');
  const token = c.socket.session.session;
  c.socket.send('one'); // (its echo waits at the fake: every stream stalls)
  await waitFor(() => c.socket.transport !== 'sse' || c.closes.length > 0, 'the fall back to long-polling', 10000);
  assert.deepEqual(c.closes, []);
  assert.deepEqual(transports, [{ type: 'transport', transport: 'polling', previous: 'sse' }]);
  assert.equal(fake.streams.length, 4, 'the first stream and three resumed ones');
  assert.equal(await c.next(), 'one');
  c.socket.send('two');
  assert.equal(await c.next(), 'two');
  await sleep(200);
  assert.deepEqual(c.messages, [], 'nothing twice');
  // The same session, carried by polls now.
  assert.equal(fake.sessions.size, 1);
  assert.ok(fake.polls.some((p) => p.conn === c.socket.session.conn), 'polls of the same session');
  assert.equal(c.socket.session.session, token);
  assert.equal(c.socket.readyState, 1);
});

test('sse: streams that never worked are remembered, and the next session starts on long-polling', async (t) => {
  const fake = await fakeServer(t, { heartbeatS: 0.1 });
  fake.stallStreams = Infinity;
  const items = new Map();
  const storage = {
    getItem: (k) => items.get(k) ?? null,
    setItem: (k, v) => items.set(k, String(v)),
    removeItem: (k) => items.delete(k),
  };
  const options = { transports: ['sse', 'polling'], sessionStorage: storage, transportTimeout: 600 };
  const first = new Collector(fake.url('/echo'), options);
  t.after(() => first.close());
  assert.equal(await first.opened, 'sse');
  await waitFor(() => first.socket.transport === 'polling', 'the fall back to long-polling', 10000);
  first.close();
  const streams = fake.streams.length;
  const second = new Collector(fake.url('/echo'), options);
  t.after(() => second.close());
  assert.equal(await second.opened, 'polling');
  second.socket.send('polled');
  assert.equal(await second.next(), 'polled');
  assert.equal(fake.streams.length, streams, 'no stream tried again');
  // Where polling may not take its place, SSE is still tried.
  const sseOnly = new Collector(fake.url('/echo'), { ...options, transports: ['sse'] });
  t.after(() => sseOnly.close());
  assert.equal(await sseOnly.opened, 'sse');
});

test('sse: a stream that proves itself (a heartbeat after its welcome) forgives the stalls before it', async (t) => {
  const fake = await fakeServer(t, { heartbeatS: 0.1 });
  fake.stallStreams = 3; // the first stream and two resumed ones; the third resumed one works
  const c = new Collector(fake.url('/echo'), { transports: ['sse', 'polling'], sessionStorage: null, transportTimeout: 600 });
  t.after(() => c.close());
  await c.opened;
  await waitFor(() => sessionOf(fake, c).sse !== null, 'a stream that works', 10000);
  await sleep(300); // a few heartbeats
  // It ends: one loss, not the fourth in a row (which ended SSE for this session).
  sessionOf(fake, c).sse.end();
  await waitFor(() => fake.streams.length >= 5 && sessionOf(fake, c).sse !== null, 'the stream resumed', 5000);
  c.socket.send('still sse');
  assert.equal(await c.next(), 'still sse');
  assert.equal(c.socket.transport, 'sse');
  assert.deepEqual(c.closes, []);
});

// ----- Empty polls answered at once (a proxy or server that does not hold them) were polled
// again at once, thousands a second. Such an answer, well before poll_timeout, is waited on now,
// longer each time (250 ms, doubling, at most 5 s or poll_timeout: 1 s here); a poll held until
// poll_timeout that ends empty is still followed by the next at once.

test('polling: empty answers that come at once are polled again after a growing delay, never in a tight loop', async (t) => {
  const fake = await fakeServer(t, { pollTimeoutS: 1 });
  const c = new Collector(fake.url('/echo'), { forceTransport: 'polling', sessionStorage: null });
  t.after(() => c.close());
  await c.opened;
  const mine = () => fake.emptyAnswers.filter((a) => a.conn === c.socket.session.conn).map((a) => a.at);
  fake.emptyPollsAtOnce = Infinity;
  await waitFor(() => mine().length > 0, 'a poll answered at once', 5000); // (once the poll held now ends)
  await sleep(2000);
  const hasty = mine();
  assert.ok(hasty.length >= 3 && hasty.length <= 6, `${hasty.length} polls answered at once in 2 s`);
  const gaps = hasty.slice(1).map((at, i) => at - hasty[i]);
  assert.ok(gaps[0] >= 200, `the first delay ${gaps[0]} ms`);
  // (Growing up to poll_timeout.)
  for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i] >= Math.min(gaps[i - 1] * 1.5, 900), `growing delays: ${gaps}`);
  // The session still works meanwhile.
  c.socket.send('between hasty polls');
  assert.equal(await c.next(5000), 'between hasty polls');
  // Held polls again: one that ends empty at poll_timeout (1 s) is followed by the next at once.
  fake.emptyPollsAtOnce = 0;
  const arrivals = [];
  fake.pollHook = (session) => {
    if (session.conn === c.socket.session.conn) arrivals.push(Date.now());
    return false;
  };
  await waitFor(() => arrivals.length >= 2, 'two held polls', 10000);
  const held = arrivals[1] - arrivals[0];
  assert.ok(held >= 950 && held < 1600, `the next poll ${held} ms after a held one began`);
  assert.deepEqual(c.closes, []);
});

// ----- close() during a backoff: its timer (up to 2 s) kept the page or the Node process busy.
// A child process whose only client is closed while it waits to retry (a poll, a stream, a
// POST, each failed three times) exits at once, and sends nothing after close() but the close
// record itself.

const CHILD = fileURLToPath(new URL('./fallback_close_child.mjs', import.meta.url));

function unavailable(res) {
  res.writeHead(503, { 'Content-Type': 'application/json' }).end('{"error":"unavailable"}');
  return true;
}

// `failures` makes the fake fail what the client does from its start on (`failed` counts each);
// `afterOpen`, once the client is open, brings about the first failure where it does not come by
// itself; `count`: the failures before the 2 s wait (3 unless said).
const BACKOFFS = {
  // Every poll of the session (after the opening one) fails: the retries wait 0.5, 1 then 2 s.
  poll: { transport: 'polling', failures(fake, failed) { fake.pollHook = (_s, res) => failed() && unavailable(res); } },
  // The stream is lost, and every resumed one ends after its welcome: resumed after 1, then 2 s.
  stream: {
    transport: 'sse',
    failures(fake, failed) {
      fake.resumedStreamHook = (session, res) => {
        failed();
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        res.end(`id: ${session.nextId - 1}\nevent: control\ndata: ${session.welcome()}\n\n`);
        return true;
      };
    },
    afterOpen(fake) { for (const s of fake.sessions.values()) s.sse?.end(); },
    count: 2,
  },
  // Every POST (the child's publish, once open) fails: tried again after 0.5, 1 then 2 s.
  post: { transport: 'sse', publish: true, failures(fake, failed) { fake.postHook = (_s, _b, res) => failed() && unavailable(res); } },
};

for (const [name, how] of Object.entries(BACKOFFS)) {
  test(`close() while a failed ${name} waits for its retry: nothing more is sent and the process exits at once`, async (t) => {
    const fake = await fakeServer(t);
    let failures = 0;
    let lastFailureAt = 0;
    how.failures(fake, () => { failures += 1; lastFailureAt = Date.now(); return true; });
    const child = spawn(process.execPath, [CHILD, fake.url('/mqtt'), how.transport, how.publish ? '1' : '0'],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    t.after(() => child.kill());
    const lines = [];
    let buffered = '';
    child.stdout.on('data', (d) => {
      buffered += d;
      for (let i; (i = buffered.indexOf('\n')) >= 0; buffered = buffered.slice(i + 1)) lines.push(JSON.parse(buffered.slice(0, i)));
    });
    const exited = new Promise((resolve) => child.on('exit', (code) => resolve({ code, at: Date.now() })));
    await waitFor(() => lines.some((l) => l.event === 'open'), 'the client open', 5000);
    how.afterOpen?.(fake);
    await waitFor(() => failures >= (how.count ?? 3), `${how.count ?? 3} failures`, 8000);
    await sleep(150); // now in the 2 s before the retry
    child.stdin.end('close\n');
    const { code, at } = await within(exited, 8000, 'the child to exit');
    const closed = lines.find((l) => l.event === 'closed');
    assert.equal(code, 0);
    // Before the retry would have come (2 s after the last failure): a backoff's timer left
    // behind kept the process alive until then. (Not "within 1 s of close()": a busy machine
    // took 1.4 s to end a process with nothing left to do.)
    assert.ok(at < lastFailureAt + 1900,
      `exited ${at - closed.at} ms after close(), ${at - lastFailureAt} ms after the last failure`);
    const after = lines.filter((l) => l.event === 'request' && l.afterClose);
    assert.equal(after.length, 1, `requests after close(): ${JSON.stringify(after)}`);
    assert.equal(after[0].method, 'POST');
    assert.match(after[0].body, /c\d+:\{"type":"close"/);
  });
}
