// The scenarios of web/wsbridge.js' fallback transports (docs/FALLBACK.md), run against the real
// wsbridge by fallback_client.test.mjs and against fallback_fake_server.mjs by
// fallback_client_unit.test.mjs. `env()` gives { bridge: {port, url(route)}, publisherUrl }
// once the caller's `before` has started things; /echo echoes, /mqtt is a JSON pub/sub route.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, webSocketRemembered } from '../../web/wsbridge.js';
import {
  Collector, EventSource, HostileProxy, MemoryStorage, NODE_TRANSPORT_OPTIONS, bytesOf, sleep, waitFor,
} from './fallback_client_support.mjs';

const TEXTS = ['hello', 'line 1\nline 2\n', '', 'cr\r\nlf\rend', 'ünïcödé €𝄞', '{"json":true}'];
const BINARIES = [Uint8Array.from([0, 1, 2, 10, 13, 58, 255]), new Uint8Array(0), new Uint8Array(70000).fill(7)];

async function echoAll(c) {
  for (const t of TEXTS) c.socket.send(t);
  for (const b of BINARIES) c.socket.send(b);
  for (const t of TEXTS) assert.equal(await c.next(), t);
  for (const b of BINARIES) {
    const got = await c.next();
    assert.ok(got instanceof ArrayBuffer, `binary arrives as an ArrayBuffer (${typeof got})`);
    assert.deepEqual(bytesOf(got), Buffer.from(b));
  }
}

export function defineScenarios(env) {
  for (const transport of ['websocket', 'sse', 'polling']) {
    test(`echo over ${transport}: text (empty, CR, LF, UTF-8) and binary (empty, 70 KB)`, async () => {
      const c = new Collector(env().bridge.url('/echo'), { forceTransport: transport, sessionStorage: null });
      assert.equal(await c.opened, transport);
      assert.equal(c.socket.transport, transport);
      await echoAll(c);
      c.close();
    });
  }

  test('by default the WebSocket, opened by its welcome, which the application never sees', async () => {
    const storage = new MemoryStorage();
    const c = new Collector(env().bridge.url('/echo'), { sessionStorage: storage });
    assert.equal(await c.opened, 'websocket');
    assert.equal(c.socket.session.type, 'welcome');
    assert.equal(c.socket.session.transport, 'websocket');
    c.socket.send('first');
    assert.equal(await c.next(), 'first');
    assert.equal(storage.map.size, 0);
    c.close();
  });

  test('a WebSocket answered 101 and then silence: SSE within the timeout, and remembered', async () => {
    const proxy = await new HostileProxy(env().bridge.port).start();
    proxy.upgrades = 'stall';
    const storage = new MemoryStorage();
    try {
      const t0 = Date.now();
      const c = new Collector(proxy.url('/echo'), { sessionStorage: storage, transportTimeout: 1000 });
      assert.equal(await c.opened, 'sse');
      assert.ok(Date.now() - t0 < 2500, `fell back after ${Date.now() - t0} ms`);
      assert.equal(proxy.upgradeCount, 1);
      await echoAll(c);
      const [[key, until]] = [...storage.map];
      assert.equal(key, `wsbridge.ws-broken:ws://127.0.0.1:${proxy.port}/echo`);
      assert.ok(Number(until) > Date.now() + 9 * 60 * 1000);
      c.close();

      // The next page load of this browser session goes straight to the fallback.
      const again = new Collector(proxy.url('/echo'), { sessionStorage: storage, transportTimeout: 1000 });
      assert.equal(await again.opened, 'sse');
      assert.equal(proxy.upgradeCount, 1);
      again.close();

      // Without SSE (no EventSource), long-polling.
      const noSse = new Collector(proxy.url('/echo'), { sessionStorage: null, transportTimeout: 1000, EventSource: null });
      assert.equal(await noSse.opened, 'polling');
      noSse.close();
    } finally {
      await proxy.stop();
    }
  });

  for (const transport of ['sse', 'polling']) {
    test(`${transport}: a POST the bridge applied but whose answer was lost is retried as it was, applied once`, async () => {
      const proxy = await new HostileProxy(env().bridge.port).start();
      try {
        const c = new Collector(proxy.url('/echo'), { forceTransport: transport, sessionStorage: null });
        await c.opened;
        proxy.dropPostAnswers = 1;
        c.socket.send('one');
        c.socket.send('two');
        c.socket.send(Uint8Array.from([1, 2, 3]));
        assert.equal(await c.next(), 'one');
        assert.equal(await c.next(), 'two');
        assert.deepEqual(bytesOf(await c.next()), Buffer.from([1, 2, 3]));
        await sleep(300);
        assert.deepEqual(c.messages, [], 'nothing twice');
        assert.ok(proxy.posts.length >= 2);
        assert.deepEqual(proxy.posts[1], proxy.posts[0], 'the retry is the same body');
        c.close();
      } finally {
        await proxy.stop();
      }
    });

    // WsbridgeSocket alone (no client pings to close a dead connection): a POST whose answer
    // never came held every message sent after it until the application closed the socket.
    test(`${transport}: a POST the bridge applied but whose answer never comes is given up after postTimeout, applied once`, async () => {
      const proxy = await new HostileProxy(env().bridge.port).start();
      try {
        const c = new Collector(proxy.url('/echo'), { forceTransport: transport, sessionStorage: null, postTimeout: 400 });
        await c.opened;
        proxy.holdPostAnswers = 1;
        c.socket.send('one');
        c.socket.send('two'); // (queued behind the POST of 'one')
        assert.equal(await c.next(), 'one');
        assert.equal(await c.next(), 'two');
        await sleep(300);
        assert.deepEqual(c.messages, [], 'nothing twice');
        assert.deepEqual(proxy.posts[1], proxy.posts[0], 'the retry is the same body');
        assert.equal(c.socket.bufferedAmount, 0);
        assert.deepEqual(c.closes, []);
        c.close();
      } finally {
        await proxy.stop();
      }
    });

    test(`${transport}: connections cut under load: the session resumes, nothing lost or repeated`, async () => {
      const proxy = await new HostileProxy(env().bridge.port).start();
      try {
        const c = new Collector(proxy.url('/echo'), { forceTransport: transport, sessionStorage: null });
        await c.opened;
        const token = c.socket.session.session;
        const want = [];
        for (let i = 0; i < 60; i++) {
          want.push(`m${i}`);
          c.socket.send(`m${i}`);
          if (i % 20 === 10) {
            await sleep(30);
            proxy.cutAll();
          }
        }
        await waitFor(() => c.messages.length >= want.length, `${want.length} echoes (got ${c.messages.length})`, 15000);
        await sleep(200);
        assert.deepEqual(c.messages, want);
        assert.equal(c.socket.session.session, token, 'the same session all along');
        assert.equal(c.closes.length, 0);
        c.close();
      } finally {
        await proxy.stop();
      }
    });
  }

  // A stream that stops bringing anything without ending (a bridge or proxy that stalls) was
  // waited on for ever by a client that sends nothing. The bridge writes a heartbeat comment every
  // `heartbeat` s (1 here): a stream silent for two plus transportTimeout is resumed from the last
  // id, as a lost one, and one that brings heartbeats alone is left alone, however quiet.
  const watchdogLimit = (c) => 2 * c.socket.session.heartbeat * 1000 + 800;

  test('sse: a stream that goes silent without ending is resumed after two heartbeats, nothing lost or repeated', async () => {
    const proxy = await new HostileProxy(env().bridge.port).start();
    try {
      proxy.stallStreams = 1;
      const c = new Collector(proxy.url('/echo'), { forceTransport: 'sse', sessionStorage: null, transportTimeout: 800 });
      await c.opened;
      const opened = Date.now();
      const limit = watchdogLimit(c);
      c.socket.send('one');
      c.socket.send(Uint8Array.from([2]));
      c.socket.send('three'); // (their echoes go to the stalled stream)
      await waitFor(() => c.messages.length >= 3 || c.closes.length > 0, 'the echoes on a resumed stream', limit + 5000);
      const waited = Date.now() - opened;
      assert.ok(waited >= limit - 100 && waited < limit + 3000, `resumed after ${waited} ms (limit ${limit})`);
      await sleep(300);
      assert.deepEqual(c.messages.map((m) => (typeof m === 'string' ? m : [...bytesOf(m)])), ['one', [2], 'three'], 'each once');
      assert.deepEqual(c.closes, []);
      assert.deepEqual(c.lost, []);
      assert.equal(proxy.streams.length, 2);
      const resumed = new URL(proxy.streams[1], 'http://x').searchParams;
      assert.equal(resumed.get('s'), c.socket.session.session);
      assert.equal(resumed.get('last'), '0');
      c.messages.length = 0;
      c.socket.send('after');
      assert.equal(await c.next(), 'after');
      c.close();
    } finally {
      await proxy.stop();
    }
  });

  test('sse: a quiet stream that brings heartbeats alone is kept, not resumed', async () => {
    const proxy = await new HostileProxy(env().bridge.port).start();
    try {
      const c = new Collector(proxy.url('/echo'), { forceTransport: 'sse', sessionStorage: null, transportTimeout: 800 });
      await c.opened;
      await sleep(watchdogLimit(c) + 1500);
      assert.equal(proxy.streams.length, 1, 'one stream all along');
      c.socket.send('still there');
      assert.equal(await c.next(), 'still there');
      assert.deepEqual(c.closes, []);
      c.close();
    } finally {
      await proxy.stop();
    }
  });

  test('sse: an EventSource given reads the stream instead (the eventsource package here)', async () => {
    const c = new Collector(env().bridge.url('/echo'), { forceTransport: 'sse', sessionStorage: null, EventSource });
    assert.equal(await c.opened, 'sse');
    await echoAll(c);
    c.close();
  });

  // The session itself moves (docs/FALLBACK.md, "Moving a session to a WebSocket"): exact, with
  // no de-duplication anywhere, both ways, while messages keep coming.
  for (const fallback of ['sse', 'polling']) {
    test(`${fallback}: the session moves to a WebSocket once one works, every echo once and in order`, async () => {
      const proxy = await new HostileProxy(env().bridge.port).start();
      proxy.upgrades = 'stall';
      const storage = new MemoryStorage();
      const c = new Collector(`${proxy.url('/echo')}?keep=1`, {
        sessionStorage: storage, transportTimeout: 800, fallbackProbeInterval: 300,
        ...(fallback === 'polling' ? { EventSource: null } : {}),
      });
      const transports = [];
      c.socket.ontransport = (t) => transports.push(t);
      try {
        assert.equal(await c.opened, fallback);
        const token = c.socket.session.session;
        const resumes = () => proxy.upgradeUrls.filter((u) => u.includes('_wsb=resume'));
        const want = [];
        for (let i = 0; i < 300; i++) {
          if (i === 100) {
            await waitFor(() => resumes().length >= 1, 'a probe that stalls');
            proxy.upgrades = 'pass';
          }
          want.push(`m${i}`);
          c.socket.send(`m${i}`);
          await sleep(5);
        }
        await waitFor(() => c.socket.transport === 'websocket', 'the move to the WebSocket', 5000);
        for (let i = 300; i < 320; i++) {
          want.push(`m${i}`);
          c.socket.send(`m${i}`);
        }
        await waitFor(() => c.messages.length >= want.length, `${want.length} echoes (got ${c.messages.length})`, 10000);
        await sleep(300);
        assert.deepEqual(c.messages, want);
        assert.deepEqual(transports, [{ type: 'transport', transport: 'websocket', previous: fallback }]);
        assert.deepEqual(c.closes, []);
        assert.deepEqual(c.lost, []);
        assert.equal(storage.map.size, 0, 'the WebSocket is no longer remembered broken');
        assert.ok(resumes().length >= 2, `a probe or more stalled before (${resumes().length})`);
        const last = new URL(resumes().at(-1), 'http://x');
        assert.equal(last.pathname, '/echo');
        assert.equal(last.searchParams.get('keep'), '1', "the route URL's own query stays");
        assert.equal(last.searchParams.get('s'), token);
        assert.match(last.searchParams.get('last'), /^\d+$/);
        // The session's token no longer carries fallbacks: it is on the WebSocket now.
        const post = await fetch(`http://127.0.0.1:${env().bridge.port}/_wsbridge/send/echo?s=${encodeURIComponent(token)}`,
          { method: 'POST', body: '1\n' });
        assert.equal(post.status, 404);
        c.close();
      } finally {
        c.close();
        await proxy.stop();
      }
    });
  }

  test('a refused resume (404): the session stays on its fallback and keeps working, nothing lost or repeated', async () => {
    const proxy = await new HostileProxy(env().bridge.port).start();
    proxy.upgrades = 'stall';
    const storage = new MemoryStorage();
    const c = new Collector(proxy.url('/echo'), { sessionStorage: storage, transportTimeout: 800, fallbackProbeInterval: 200 });
    const transports = [];
    c.socket.ontransport = (t) => transports.push(t);
    try {
      assert.equal(await c.opened, 'sse');
      proxy.upgrades = 'refuse-resume';
      const refused = () => proxy.upgradeUrls.filter((u) => u.includes('_wsb=resume')).length;
      const want = [];
      for (let i = 0; refused() < 3 || i < 100; i++) {
        assert.ok(i < 2000, 'three resumes within 2000 messages');
        want.push(`m${i}`);
        c.socket.send(`m${i}`);
        await sleep(5);
      }
      await waitFor(() => c.messages.length >= want.length, `${want.length} echoes (got ${c.messages.length})`, 10000);
      await sleep(300);
      assert.deepEqual(c.messages, want);
      assert.equal(c.socket.transport, 'sse');
      assert.equal(c.socket.readyState, 1);
      assert.deepEqual(transports, []);
      assert.deepEqual(c.closes, []);
      assert.ok(webSocketRemembered(storage, new URL(proxy.url('/echo'))), 'the WebSocket is remembered broken');
      c.messages.length = 0;
      c.socket.send('still here');
      assert.equal(await c.next(), 'still here');
    } finally {
      c.close();
      await proxy.stop();
    }
  });

  test('WsbridgeClient: moving to a WebSocket mid-stream, QoS 1 both ways: each message once, in order', async () => {
    const proxy = await new HostileProxy(env().bridge.port).start();
    proxy.upgrades = 'stall';
    const storage = new MemoryStorage();
    const common = { ...NODE_TRANSPORT_OPTIONS, pingIntervalMs: 0, sessionStorage: storage };
    const client = connect(proxy.url('/mqtt'), { ...common, transportTimeout: 800, fallbackProbeInterval: 300 });
    const publisher = connect(env().bridge.url('/mqtt'), { ...common, forceTransport: 'websocket' });
    const transports = [];
    const events = [];
    client.on('transport', (t) => transports.push(t));
    client.on('open', () => events.push('open'));
    client.on('close', () => events.push('close'));
    const errors = [];
    client.on('error', (e) => errors.push(e));
    try {
      await new Promise((resolve) => client.on('open', resolve));
      assert.equal(client.transport, 'sse');
      const got = [];
      await client.subscribe('sensors/seq/#', (m) => got.push(m.payload), { qos: 1 });
      await new Promise((resolve) => (publisher.state === 'open' ? resolve() : publisher.on('open', resolve)));
      const up = [];
      await publisher.subscribe('sensors/up/#', (m) => up.push(m.payload), { qos: 1 });
      await sleep(700); // a probe or two fail meanwhile
      assert.equal(client.transport, 'sse');
      const n = 200;
      const publishes = [];
      for (let i = 1; i <= n; i++) {
        if (i === 40) {
          // Slowly: the stream brings more messages after the upgrade went out, before the
          // session moves; the WebSocket then starts with them again, and they are skipped.
          proxy.upgradeDelayMs = 150;
          proxy.upgrades = 'pass';
        }
        publishes.push(client.publish(`sensors/up/${i % 3}`, i, { qos: 1 }));
        await publisher.publish(`sensors/seq/${i % 3}`, i, { qos: 1 });
        await sleep(5);
      }
      await waitFor(() => client.transport === 'websocket', 'the move to the WebSocket', 5000);
      await Promise.all(publishes);
      const all = Array.from({ length: n }, (_, i) => i + 1);
      await waitFor(() => got.length >= n && up.length >= n, `${n} messages each way (got ${got.length}, ${up.length})`, 5000);
      await sleep(300);
      assert.deepEqual(got, all);
      assert.deepEqual(up, all);
      assert.deepEqual(transports, [{ transport: 'sse', previous: null }, { transport: 'websocket', previous: 'sse' }]);
      assert.deepEqual(events, ['open'], 'the same connection: no close, no second open');
      assert.equal(storage.map.size, 0, 'the WebSocket is no longer remembered broken');
      assert.deepEqual(client.subscriptions, ['sensors/seq/#']);
      // And it goes on, on the same session.
      await publisher.publish('sensors/seq/after', 'after', { qos: 1 });
      await waitFor(() => got.includes('after'), 'a message after the move');
      assert.deepEqual(errors, []);
    } finally {
      client.close();
      publisher.close();
      await proxy.stop();
    }
  });
}
