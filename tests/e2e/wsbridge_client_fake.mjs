// The fake WebSocket and helpers shared by the unit tests of web/wsbridge.js
// (wsbridge_client.test.mjs, wsbridge_client_reconnect.test.mjs). Not a test file itself: the
// name does not end in .test.mjs.
import { connect } from '../../web/wsbridge.js';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A WebSocket stand-in the tests drive by hand: open(), receive(), serverClose().
class FakeSocket {
  static instances = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeSocket.instances.push(this);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('InvalidStateError');
    this.sent.push(JSON.parse(data));
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(frame) {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  serverClose(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  sentOfType(type) {
    return this.sent.filter((f) => f.type === type);
  }

  last() {
    return this.sent[this.sent.length - 1];
  }

  ack(frame) {
    this.receive({ type: 'ack', id: frame.id });
  }
}

// A fresh client on a fresh fake class, with fast timers unless told otherwise.
export function setup(options = {}) {
  FakeSocket.instances = [];
  const client = connect('ws://bridge.test/mqtt', {
    WebSocket: FakeSocket,
    transports: ['websocket'], // a WebSocket alone: no welcome awaited (the fallbacks have their own tests)
    pingIntervalMs: 0,
    reconnect: { initialDelayMs: 5, maxDelayMs: 50, factor: 2, jitter: 0 },
    ...options,
  });
  const errors = [];
  client.on('error', (e) => errors.push(e));
  const socket = () => FakeSocket.instances[FakeSocket.instances.length - 1];
  return { client, errors, socket, sockets: FakeSocket.instances };
}

export async function waitFor(check, what, timeoutMs = 1000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

// Waits for the reconnect and opens the new socket.
export async function reconnect(env) {
  const before = env.sockets.length;
  await waitFor(() => env.sockets.length > before, 'a new socket');
  env.socket().open();
}
