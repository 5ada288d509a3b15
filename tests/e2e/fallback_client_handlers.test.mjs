// web/wsbridge.js: what the application's handlers throw is reported (reportError, as a browser
// reports an exception from an event listener) and never cuts short the client's own work
// around the call. Before, an ontransport that threw escaped from the timer that fell back to
// long-polling (an uncaught exception: Node ended the process), an onopen that threw left the
// move to a WebSocket unscheduled for good, and an onerror that threw while a poll's answer was
// read ended the polling with the session still open. With fallback_fake_server.mjs (no server
// binary).
//   node --test tests/e2e/fallback_client_handlers.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Collector, fakeServer, MemoryStorage, NODE_TRANSPORT_OPTIONS, sleep, waitFor,
} from './fallback_client_support.mjs';
import { rememberWebSocketBroken } from '../../web/wsbridge-socket.js';
import { connect } from '../../web/wsbridge.js';

// Collects what is reported through globalThis.reportError for the length of one test.
function catchReports(t) {
  const reported = [];
  const had = Object.getOwnPropertyDescriptor(globalThis, 'reportError');
  globalThis.reportError = (err) => reported.push(err);
  t.after(() => {
    if (had) Object.defineProperty(globalThis, 'reportError', had);
    else delete globalThis.reportError;
  });
  return reported;
}

// A long-polling session whose onmessage throws on the message "bad"; `received`: every message.
async function pollingWithAFailingHandler(t) {
  const fake = await fakeServer(t, { pollTimeoutS: 1 });
  const c = new Collector(fake.url('/echo'), { transports: ['polling'], sessionStorage: null });
  t.after(() => c.close());
  assert.equal(await c.opened, 'polling');
  const received = [];
  c.socket.onmessage = (e) => {
    received.push(e.data);
    if (e.data === 'bad') throw new Error('onmessage failed');
  };
  return { c, received };
}

test('sse: an ontransport handler that throws is reported, and the session goes on over long-polling', async (t) => {
  const reported = catchReports(t);
  const fake = await fakeServer(t, { heartbeatS: 0.1 });
  fake.stallStreams = Infinity;
  // (transportTimeout 1.5 s: a stream's welcome comes in time on a busy machine too; the stalls
  // then take 4 × 1.7 s.)
  const c = new Collector(fake.url('/echo'), { transports: ['sse', 'polling'], sessionStorage: null, transportTimeout: 1500 });
  t.after(() => c.close());
  const transports = [];
  c.socket.ontransport = (info) => {
    transports.push(info.transport);
    throw new Error('ontransport failed');
  };
  assert.equal(await c.opened, 'sse');
  await waitFor(() => c.socket.transport === 'polling' || c.closes.length > 0, 'the fall back to long-polling', 20000);
  assert.deepEqual(transports, ['polling']);
  assert.deepEqual(reported.map((e) => e.message), ['ontransport failed']);
  c.socket.send('after');
  assert.equal(await c.next(), 'after');
  assert.deepEqual(c.closes, []);
  assert.equal(c.socket.readyState, 1);
});

test('an onopen handler that throws is reported, and the session still moves to a WebSocket', async (t) => {
  const reported = catchReports(t);
  const fake = await fakeServer(t);
  const url = fake.url('/echo');
  const storage = new MemoryStorage();
  rememberWebSocketBroken(storage, new URL(url), 60000); // so the session opens on SSE
  const c = new Collector(url, { sessionStorage: storage, transportTimeout: 800, fallbackProbeInterval: 200 });
  t.after(() => c.close());
  const opens = [];
  c.socket.onopen = () => {
    opens.push(c.socket.transport);
    throw new Error('onopen failed');
  };
  await waitFor(() => c.socket.readyState === 1, 'the session open');
  assert.deepEqual(opens, ['sse']);
  await waitFor(() => c.socket.transport === 'websocket', 'the move to a WebSocket', 5000);
  assert.equal(fake.moves, 1);
  assert.deepEqual(reported.map((e) => e.message), ['onopen failed']);
  c.socket.send('moved');
  assert.equal(await c.next(), 'moved');
  assert.deepEqual(c.closes, []);
});

test('polling: an onerror handler that throws while a message handler failed is reported, and the polling goes on', async (t) => {
  const reported = catchReports(t);
  const { c, received } = await pollingWithAFailingHandler(t);
  c.socket.onerror = (e) => { throw new Error(`onerror failed on: ${e.error.message}`); };
  c.socket.send('bad');
  await waitFor(() => reported.length > 0, 'the report');
  assert.deepEqual(reported.map((e) => e.message), ['onerror failed on: onmessage failed']);
  c.socket.send('good');
  await waitFor(() => received.includes('good'), 'the next echo, over a later poll', 5000);
  assert.deepEqual(received, ['bad', 'good']);
  assert.equal(c.socket.readyState, 1);
});

test('polling: a message handler that throws with no onerror set is reported as uncaught, not lost', async (t) => {
  const reported = catchReports(t);
  const { c, received } = await pollingWithAFailingHandler(t);
  c.socket.onerror = null;
  c.socket.send('bad');
  c.socket.send('good');
  await waitFor(() => received.includes('good'), 'the echo after it', 5000);
  assert.deepEqual(reported.map((e) => e.message), ['onmessage failed']);
});

test('WsbridgeClient: a listener that throws is reported, and the other listeners still run', async (t) => {
  const reported = catchReports(t);
  const fake = await fakeServer(t);
  const client = connect(fake.url('/mqtt'), { ...NODE_TRANSPORT_OPTIONS, forceTransport: 'polling', sessionStorage: null, pingIntervalMs: 0 });
  t.after(() => client.close());
  const seen = [];
  client.on('open', () => { throw new Error('first open listener failed'); });
  client.on('open', () => seen.push('second'));
  await waitFor(() => seen.length > 0, 'the second listener', 5000);
  await sleep(50);
  assert.deepEqual(seen, ['second']);
  assert.deepEqual(reported.map((e) => e.message), ['first open listener failed']);
});
