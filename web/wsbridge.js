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

const OPEN = 1; // WebSocket.OPEN, spelled out so that WebSocket-like classes without statics work

const DEFAULTS = {
  token: undefined,
  protocols: undefined,
  reconnect: { initialDelayMs: 500, maxDelayMs: 15000, factor: 2, jitter: 0.3 },
  pingIntervalMs: 15000,
  pongTimeoutMs: 5000,
  maxQueuedPublishes: 100,
  requestTimeoutMs: 10000,
  WebSocket: undefined,
  random: Math.random,
};

// Close codes after which reconnecting would only be refused again.
const NO_RECONNECT_CODES = new Set([1008]);
const CLOSE_PONG_TIMEOUT = 4000;
// Errors after which a restored subscription is forgotten: retrying them cannot succeed.
const PERMANENT_SUBSCRIBE_ERRORS = new Set(['forbidden', 'bad_request']);

/** An error reported by the bridge (an error frame) or by this client (code "disconnected", ...). */
export class WsbridgeError extends Error {
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = 'WsbridgeError';
    this.code = code;
    if (details.id !== undefined) this.id = details.id;
    if (details.topic !== undefined) this.topic = details.topic;
    if (details.request !== undefined) this.request = details.request;
  }
}

// ---------------------------------------------------------------------------------------------
// MQTT topics

/**
 * True when the MQTT filter `filter` matches the topic `topic` (MQTT 3.1.1 section 4.7):
 * `+` matches one level, `#` the rest (including the parent level: `a/#` matches `a`), and
 * wildcards at the first level do not match topics beginning with `$`.
 */
export function topicMatches(filter, topic) {
  // A shared subscription delivers the topics of its inner filter.
  if (filter.startsWith('$share/')) {
    const inner = filter.indexOf('/', 7);
    if (inner < 0) return false;
    filter = filter.slice(inner + 1);
  }
  if (topic.startsWith('$') && (filter[0] === '+' || filter[0] === '#')) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

function filterProblem(filter) {
  if (typeof filter !== 'string' || filter === '') return 'the filter must be a non-empty string';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      return '"#" must be a whole level and the last one';
    }
    if (level.includes('+') && level !== '+') return '"+" must be a whole level';
  }
  return null;
}

function topicProblem(topic) {
  if (typeof topic !== 'string' || topic === '') return 'the topic must be a non-empty string';
  if (/[+#]/.test(topic)) return 'a publish topic cannot contain wildcards';
  return null;
}

// ---------------------------------------------------------------------------------------------
// Base64 (atob/btoa exist in browsers and in Node 16+)

function bytesToBase64(bytes) {
  let binary = '';
  // Chunked: String.fromCharCode(...bytes) overflows the call stack on large payloads.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function base64ToBytes(b64) {
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function asBytes(payload) {
  if (payload instanceof Uint8Array) return payload;
  if (payload instanceof ArrayBuffer) return new Uint8Array(payload);
  if (ArrayBuffer.isView(payload)) {
    return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// The client

export class WsbridgeClient {
  /**
   * Starts connecting at once; prefer `connect(url, options)`.
   */
  constructor(url, options = {}) {
    this._url = url;
    this._options = {
      ...DEFAULTS,
      ...options,
      reconnect: { ...DEFAULTS.reconnect, ...(options.reconnect || {}) },
    };
    this._WebSocket = this._options.WebSocket || globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') {
      throw new TypeError('wsbridge: no WebSocket implementation (pass options.WebSocket)');
    }
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
        // rethrown on its own task so that it still shows up as an uncaught error.
        setTimeout(() => {
          throw err;
        });
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

  // ----- connection

  _isOpen() {
    return this._state === 'open' && this._ws !== null && this._ws.readyState === OPEN;
  }

  _buildUrl() {
    if (this._token == null || this._token === '') return String(this._url);
    const base = globalThis.location ? globalThis.location.href : undefined;
    const url = new URL(String(this._url), base);
    url.searchParams.set('access_token', this._token);
    return url.toString();
  }

  _openSocket(first) {
    let ws;
    try {
      const url = this._buildUrl();
      ws = this._options.protocols === undefined
        ? new this._WebSocket(url)
        : new this._WebSocket(url, this._options.protocols);
    } catch (err) {
      if (first) throw err; // a bad URL or options: tell the caller of connect()
      this._emit('error', err);
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.binaryType = 'arraybuffer';
    // Handlers check `this._ws === ws`: a socket given up on (pong timeout, close()) may still
    // fire late events, which must not touch the current connection.
    ws.onopen = () => {
      if (this._ws === ws) this._handleOpen();
    };
    ws.onmessage = (event) => {
      if (this._ws === ws) this._handleData(event.data);
    };
    ws.onclose = (event) => {
      if (this._ws === ws) {
        this._detach();
        this._handleClose(event.code, event.reason || '');
      }
    };
    // A WebSocket error is always followed by a close event, which carries what is useful.
    ws.onerror = () => {};
  }

  _handleOpen() {
    this._state = 'open';
    this._attempt = 0;
    this._startPing();
    // Subscriptions first, then the queued publishes: a page that publishes to a topic it
    // subscribes to sees its own messages.
    for (const sub of this._subs.values()) this._resubscribe(sub);
    for (const item of this._queue.splice(0)) {
      this._request(item.frame).then(() => item.resolve(), item.reject);
    }
    this._emit('open');
  }

  _resubscribe(sub) {
    // No timeout: while the broker is down the bridge acks when the broker confirms.
    this._request({ type: 'subscribe', topic: sub.filter, qos: sub.qos }, { internal: true, timeoutMs: 0 })
      .then(() => {
        if (this._subs.get(sub.filter) !== sub) return;
        sub.active = true;
        for (const w of sub.waiters.splice(0)) w.resolve();
      }, (err) => {
        if (err.code === 'disconnected') return; // waiters wait for the next connection
        if (this._subs.get(sub.filter) !== sub) return;
        const waiters = sub.waiters.splice(0);
        const wasActive = sub.active;
        if (PERMANENT_SUBSCRIBE_ERRORS.has(err.code)) {
          this._subs.delete(sub.filter);
          sub.active = false;
        }
        for (const w of waiters) w.reject(err);
        // The waiters' promises report it to their callers; a restored subscription has no
        // caller any more, so it is reported as an event.
        if (wasActive) this._emit('error', err);
      });
  }

  // Stops using the current socket at once. A dead peer could make the browser wait up to a
  // minute for the closing handshake, so the close is handled here rather than on 'close'.
  _dropSocket(code, reason) {
    const ws = this._ws;
    this._detach();
    try {
      ws.close(code, reason);
    } catch {
      // already closing
    }
    this._handleClose(code, reason);
  }

  _detach() {
    const ws = this._ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {}; // a late error event must not reach the console as unhandled
    this._ws = null;
  }

  _handleClose(code, reason) {
    this._stopPing();
    for (const [id, p] of this._pending) {
      this._pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new WsbridgeError('disconnected', `connection closed (${code}) before the answer`, { id }));
    }
    this._setUpstream('unknown');

    const willReconnect = !this._closedByUser && !NO_RECONNECT_CODES.has(code);
    if (!willReconnect) {
      this._state = 'closed';
      const err = this._closedError();
      for (const item of this._queue.splice(0)) item.reject(err);
      for (const sub of this._subs.values()) for (const w of sub.waiters.splice(0)) w.reject(err);
    } else {
      this._state = 'reconnecting';
    }
    this._emit('close', { code, reason, willReconnect });
    // A 'close' listener may have called close().
    if (willReconnect && !this._closedByUser) this._scheduleReconnect();
  }

  _scheduleReconnect() {
    const { initialDelayMs, maxDelayMs, factor, jitter } = this._options.reconnect;
    this._attempt += 1;
    const base = Math.min(maxDelayMs, initialDelayMs * factor ** (this._attempt - 1));
    // Jitter spreads the reconnects of many pages after a bridge restart.
    const spread = base * jitter * (this._options.random() * 2 - 1);
    const delayMs = Math.max(0, Math.round(Math.min(maxDelayMs, base + spread)));
    this._state = 'reconnecting';
    this._emit('reconnecting', { attempt: this._attempt, delayMs });
    // A 'reconnecting' listener may have called close().
    if (this._closedByUser) return;
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      if (!this._closedByUser) this._openSocket(false);
    }, delayMs);
  }

  // ----- liveness

  _startPing() {
    const interval = this._options.pingIntervalMs;
    if (!(interval > 0)) return;
    this._pingTimer = setInterval(() => {
      if (this._pongTimer !== null || !this._isOpen()) return;
      this._send({ type: 'ping', id: this._newId() });
      this._pongTimer = setTimeout(() => {
        this._pongTimer = null;
        if (this._ws) this._dropSocket(CLOSE_PONG_TIMEOUT, 'pong timeout');
      }, this._options.pongTimeoutMs);
    }, interval);
  }

  _stopPing() {
    clearInterval(this._pingTimer);
    clearTimeout(this._pongTimer);
    this._pingTimer = null;
    this._pongTimer = null;
  }

  // ----- frames

  _newId() {
    this._nextId += 1;
    return String(this._nextId);
  }

  _send(frame) {
    this._ws.send(JSON.stringify(frame));
  }

  _request(frame, { internal = false, timeoutMs = this._options.requestTimeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      const id = this._newId();
      const pending = { resolve, reject, timer: null, internal };
      if (timeoutMs > 0) {
        pending.timer = setTimeout(() => {
          this._pending.delete(id);
          reject(new WsbridgeError('timeout', `no answer to ${frame.type} within ${timeoutMs} ms`, { id }));
        }, timeoutMs);
      }
      this._pending.set(id, pending);
      try {
        this._send({ ...frame, id });
      } catch (err) {
        this._pending.delete(id);
        clearTimeout(pending.timer);
        reject(err);
      }
    });
  }

  _settle(id, fn) {
    const p = this._pending.get(String(id));
    if (!p) return false;
    this._pending.delete(String(id));
    clearTimeout(p.timer);
    fn(p);
    return true;
  }

  _handleData(data) {
    // Any frame proves the connection alive.
    clearTimeout(this._pongTimer);
    this._pongTimer = null;

    if (typeof data !== 'string') {
      this._emit('error', new WsbridgeError('bad_frame', 'unexpected binary frame from the bridge'));
      return;
    }
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      this._emit('error', new WsbridgeError('bad_frame', 'a frame from the bridge is not JSON'));
      return;
    }
    if (frame === null || typeof frame !== 'object') return;

    switch (frame.type) {
      case 'message':
        this._handleMessage(frame);
        break;
      case 'ack':
        this._settle(frame.id, (p) => p.resolve(frame));
        break;
      case 'response':
        this._settle(frame.id, (p) => p.resolve(frame));
        break;
      case 'error': {
        const err = new WsbridgeError(frame.code || 'internal', frame.message || '', { id: frame.id });
        // An error without an id (or for a request given up on) still deserves to be seen.
        if (frame.id === undefined || !this._settle(frame.id, (p) => p.reject(err))) {
          this._emit('error', err);
        }
        break;
      }
      case 'status':
        if (frame.upstream !== undefined) this._setUpstream(frame.upstream);
        if (frame.dropped !== undefined) this._emit('status', { dropped: frame.dropped });
        break;
      case 'pong':
        break; // the frame itself cleared the pong timer
      default:
        break; // unknown types are ignored, for forward compatibility
    }
  }

  _setUpstream(upstream) {
    if (upstream === this._upstream) return;
    this._upstream = upstream;
    this._emit('status', { upstream });
  }

  _handleMessage(frame) {
    const message = {
      topic: frame.topic,
      payload: frame.payload,
      qos: frame.qos ?? 0,
      retain: Boolean(frame.retain),
    };
    if (typeof frame.payload_b64 === 'string') {
      try {
        message.payloadBytes = base64ToBytes(frame.payload_b64);
      } catch {
        this._emit('error', new WsbridgeError('bad_frame', 'invalid payload_b64 in a message'));
        return;
      }
      message.payload = message.payloadBytes;
    }
    this._emit('message', message);

    // The bridge sends a message once however many of our filters match it; each handler
    // gets it once too, even when registered for several matching filters.
    const handlers = new Set();
    for (const sub of this._subs.values()) {
      if (topicMatches(sub.filter, message.topic)) for (const h of sub.handlers) handlers.add(h);
    }
    for (const handler of handlers) {
      try {
        handler(message);
      } catch (err) {
        this._emit('error', err);
      }
    }
  }

  _closedError() {
    return new WsbridgeError('closed', 'the client is closed');
  }

  _notOpenError() {
    return new WsbridgeError('disconnected', `not connected (${this._state})`);
  }
}

/** Creates a client and starts connecting. */
export function connect(url, options = {}) {
  return new WsbridgeClient(url, options);
}
