// wsbridge.js: the browser client of wsbridge's JSON protocol (docs/PROTOCOL.md).
//
// A plain ES2020 module with no dependencies and no build step:
//
//   import { connect } from './wsbridge.js';
//   const client = connect('wss://example.com/mqtt', { token });
//   await client.subscribe('sensors/+/temp', (m) => console.log(m.topic, m.payload));
//   await client.publish('cmd/lamp', { on: true }, { qos: 1 });
//
// What it adds over a bare WebSocket: request ids matched to their ack/error, reconnection with
// exponential backoff, subscriptions remembered and restored after every reconnect, publishes
// queued while disconnected, client-side MQTT filter matching (so each handler sees only its
// messages) and an application-level ping, because browsers cannot send WebSocket pings.
//
// Where WebSockets are broken (a proxy that strips Upgrade, or answers 101 and forwards nothing)
// it carries the same session over HTTP (docs/FALLBACK.md): WebSocket, then SSE, then
// long-polling, each counted open only when wsbridge's welcome arrives on it; a WebSocket that
// failed is remembered for the browser session and probed again, and once one works the server
// moves the session itself onto it, exactly (client.transport, the 'transport' event).
// WsbridgeSocket is that layer alone, WebSocket-like.
//
// The library is a few ES modules loaded by the browser itself, still with no build step; this one
// is its entry point (WsbridgeClient's API and events) and re-exports what the others export:
// wsbridge-connection.js (the client's connection, reconnects and liveness), wsbridge-frames.js
// (its frames: requests and answers, messages to handlers, WsbridgeError), wsbridge-socket.js
// (WsbridgeSocket, the transports), wsbridge-move.js (moving a fallback session onto a
// WebSocket), wsbridge-fallback.js (the SSE and long-polling session), wsbridge-sse.js (its SSE
// stream, read over fetch), wsbridge-upstream.js (its upstream POSTs), wsbridge-wire.js (topics,
// base64, wire formats).

import { ClientConnection } from './wsbridge-connection.js';
import { WsbridgeError } from './wsbridge-frames.js';
import {
  rememberWebSocketBroken, reportHandlerError, TRANSPORTS, webSocketRemembered, WsbridgeSocket,
} from './wsbridge-socket.js';
import {
  asBytes, bytesToBase64, decodeSseEvent, encodePostBody, filterProblem, parsePollBody, topicMatches,
  topicProblem,
} from './wsbridge-wire.js';

export {
  decodeSseEvent, encodePostBody, parsePollBody, rememberWebSocketBroken, topicMatches, TRANSPORTS,
  webSocketRemembered, WsbridgeError, WsbridgeSocket,
};

const DEFAULTS = {
  token: undefined,
  protocols: undefined,
  reconnect: { initialDelayMs: 500, maxDelayMs: 15000, factor: 2, jitter: 0.3, stableAfterMs: 5000 },
  pingIntervalMs: 15000,
  pongTimeoutMs: 5000,
  maxQueuedPublishes: 100,
  requestTimeoutMs: 10000,
  WebSocket: undefined,
  random: Math.random,
  // Transports (docs/FALLBACK.md): tried in this order, each within transportTimeout.
  transports: ['websocket', 'sse', 'polling'],
  forceTransport: undefined,
  transportTimeout: 5000,
  postTimeout: undefined, // a fallback POST's bound (ms); default: the welcome's poll_timeout + transportTimeout
  fallbackProbeInterval: 30000,
  brokenWebSocketMemoryMs: 10 * 60 * 1000,
  EventSource: undefined,
  fetch: undefined,
  sessionStorage: undefined,
};

// ---------------------------------------------------------------------------------------------
// The client

export class WsbridgeClient extends ClientConnection {
  /**
   * Starts connecting at once; prefer `connect(url, options)`.
   */
  constructor(url, options = {}) {
    super();
    this._url = url;
    this._options = {
      ...DEFAULTS,
      ...options,
      reconnect: { ...DEFAULTS.reconnect, ...(options.reconnect || {}) },
    };
    this._token = this._options.token;

    this._listeners = new Map(); // event -> Set of functions
    this._state = 'connecting';
    this._upstream = 'unknown';
    this._ws = null;
    this._closedByUser = false;
    this._attempt = 0; // reconnect attempts since the last successful open
    this._reconnectTimer = null;
    this._pingTimer = null;
    this._pongTimer = null;
    this._lastTransport = null; // of the last connection that opened

    this._nextId = 0;
    this._pending = new Map(); // id -> {resolve, reject, timer, internal}
    this._subs = new Map(); // filter -> {filter, qos, handlers: Set, active, waiters: []}
    this._queue = []; // publishes waiting for a connection: {frame, resolve, reject}

    this._openSocket(true);
  }

  /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
  get state() {
    return this._state;
  }

  /** 'up' | 'down' | 'unknown' (unknown while not connected) */
  get upstream() {
    return this._upstream;
  }

  /** 'websocket' | 'sse' | 'polling' while open, else null. */
  get transport() {
    return this._isOpen() ? this._ws.transport : null;
  }

  /** The remembered subscription filters. */
  get subscriptions() {
    return [...this._subs.keys()];
  }

  // ----- events

  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return this;
  }

  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
    return this;
  }

  _emit(event, arg) {
    const fns = this._listeners.get(event);
    if (event === 'error' && (!fns || fns.size === 0)) {
      // Nobody listens: do not lose it silently.
      console.error('wsbridge:', arg);
      return;
    }
    if (!fns) return;
    for (const fn of [...fns]) {
      try {
        fn(arg);
      } catch (err) {
        // A throwing listener must neither break the client nor hide the other listeners;
        // reported so that it still shows up as an uncaught error.
        reportHandlerError(err);
      }
    }
  }

  // ----- public API

  subscribe(filter, handler, { qos = 0 } = {}) {
    const problem = filterProblem(filter);
    if (problem) return Promise.reject(new WsbridgeError('bad_request', problem, { topic: filter }));
    if (handler != null && typeof handler !== 'function') {
      return Promise.reject(new TypeError('wsbridge: the handler must be a function'));
    }
    if (this._state === 'closed') return Promise.reject(this._closedError());

    let sub = this._subs.get(filter);
    const isNew = !sub;
    if (isNew) {
      sub = { filter, qos, handlers: new Set(), active: false, waiters: [] };
      this._subs.set(filter, sub);
    }
    const previousQos = sub.qos;
    const hadHandler = handler ? sub.handlers.has(handler) : true;
    sub.qos = Math.max(sub.qos, qos);
    if (handler) sub.handlers.add(handler);

    // A refused subscribe leaves things as they were before this call.
    const undo = () => {
      if (this._subs.get(filter) !== sub) return;
      if (!hadHandler) sub.handlers.delete(handler);
      sub.qos = previousQos;
      if (isNew && !sub.active && sub.waiters.length === 0) this._subs.delete(filter);
    };

    if (this._isOpen()) {
      return this._request({ type: 'subscribe', topic: filter, qos }).then(
        () => {
          sub.active = true;
        },
        (err) => {
          undo();
          throw err;
        },
      );
    }
    // Disconnected: settled by the resubscription after the reconnect.
    return new Promise((resolve, reject) => {
      sub.waiters.push({
        resolve,
        reject: (err) => {
          undo();
          reject(err);
        },
      });
    });
  }

  unsubscribe(filter) {
    const sub = this._subs.get(filter);
    // Forgotten at once: its handlers get nothing more, and it is not restored on a reconnect.
    this._subs.delete(filter);
    if (sub) {
      for (const w of sub.waiters.splice(0)) {
        w.reject(new WsbridgeError('cancelled', `unsubscribed from ${filter}`, { topic: filter }));
      }
    }
    if (!this._isOpen()) return Promise.resolve(); // the next connection never has it
    return this._request({ type: 'unsubscribe', topic: filter }).then(() => undefined);
  }

  publish(topic, payload, { qos = 0, retain = false } = {}) {
    const problem = topicProblem(topic);
    if (problem) return Promise.reject(new WsbridgeError('bad_request', problem, { topic }));
    if (this._state === 'closed') return Promise.reject(this._closedError());

    const frame = { type: 'publish', topic, qos, retain };
    const bytes = asBytes(payload);
    if (bytes) frame.payload_b64 = bytesToBase64(bytes);
    else if (payload !== undefined) frame.payload = payload;

    if (this._isOpen()) return this._request(frame).then(() => undefined);
    if (this._queue.length >= this._options.maxQueuedPublishes) {
      return Promise.reject(new WsbridgeError('queue_full',
        `${this._queue.length} publishes already wait for the connection`, { topic }));
    }
    return new Promise((resolve, reject) => this._queue.push({ frame, resolve, reject }));
  }

  request(method, path, body, { headers = {} } = {}) {
    if (!this._isOpen()) return Promise.reject(this._notOpenError());
    const frame = { type: 'request', method, path, headers };
    if (body !== undefined) frame.body = body;
    return this._request(frame).then((r) => ({ status: r.status, headers: r.headers || {}, body: r.body }));
  }

  refreshToken(token) {
    // Kept for every later reconnect as well: the URL carries the token.
    this._token = token;
    if (!this._isOpen()) return Promise.resolve();
    return this._request({ type: 'auth', token }).then(() => undefined);
  }

  close() {
    if (this._state === 'closed') return;
    this._closedByUser = true;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    if (this._ws) {
      this._dropSocket(1000, '');
    } else {
      this._handleClose(1000, '');
    }
  }
}

/** Creates a client and starts connecting. */
export function connect(url, options = {}) {
  return new WsbridgeClient(url, options);
}
