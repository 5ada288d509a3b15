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
  // Transports (docs/FALLBACK.md): tried in this order, each within transportTimeout.
  transports: ['websocket', 'sse', 'polling'],
  forceTransport: undefined,
  transportTimeout: 5000,
  fallbackProbeInterval: 30000,
  brokenWebSocketMemoryMs: 10 * 60 * 1000,
  EventSource: undefined,
  fetch: undefined,
  sessionStorage: undefined,
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
// Fallback wire formats (docs/FALLBACK.md), exported for tests and for other clients

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');
const NEWLINE = 10;
const COLON = 58;

function asciiNumber(bytes, what) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  if (!/^\d{1,15}$/.test(text)) throw new Error(`wsbridge: bad ${what} "${text}"`);
  return Number(text);
}

/**
 * Parses a long-poll response body: `<first id>\n` then `t|b|c<length>:<bytes>` records
 * (lengths in bytes). Returns {firstId, records: [{kind, bytes}]}; throws when malformed.
 */
export function parsePollBody(body) {
  const bytes = asBytes(body) || utf8Encoder.encode(String(body));
  const eol = bytes.indexOf(NEWLINE);
  if (eol < 0) throw new Error('wsbridge: a poll body without its first line');
  const firstId = asciiNumber(bytes.subarray(0, eol), 'first id');
  const records = [];
  let pos = eol + 1;
  while (pos < bytes.length) {
    const kind = String.fromCharCode(bytes[pos]);
    if (kind !== 't' && kind !== 'b' && kind !== 'c') throw new Error(`wsbridge: bad record kind "${kind}"`);
    const colon = bytes.indexOf(COLON, pos + 1);
    if (colon < 0) throw new Error('wsbridge: a record without its length');
    const length = asciiNumber(bytes.subarray(pos + 1, colon), 'record length');
    const end = colon + 1 + length;
    if (end > bytes.length) throw new Error('wsbridge: a record cut short');
    records.push({ kind, bytes: bytes.subarray(colon + 1, end) });
    pos = end;
  }
  return { firstId, records };
}

/** The body of an upstream POST: `<seq>\n` then a `t` or `b` record per message. */
export function encodePostBody(seq, messages, control = null) {
  const parts = [utf8Encoder.encode(`${seq}\n`)];
  for (const m of messages) {
    const payload = typeof m === 'string' ? utf8Encoder.encode(m) : asBytes(m);
    if (!payload) throw new TypeError('wsbridge: a message must be a string or bytes');
    parts.push(utf8Encoder.encode(`${typeof m === 'string' ? 't' : 'b'}${payload.length}:`), payload);
  }
  if (control) {
    // A control record (the client's close): it takes the next sequence number.
    const json = utf8Encoder.encode(JSON.stringify(control));
    parts.push(utf8Encoder.encode(`c${json.length}:`), json);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Decodes an SSE event of the fallback stream: its type (`message`, `frame`, `control`) and data.
 * Returns {kind: 'text', text} | {kind: 'binary', bytes} | {kind: 'control', control}.
 */
export function decodeSseEvent(type, data) {
  if (type === 'control') return { kind: 'control', control: JSON.parse(data) };
  if (type === 'frame') {
    const bytes = base64ToBytes(data.slice(1));
    if (data[0] === 't') return { kind: 'text', text: utf8Decoder.decode(bytes) };
    if (data[0] === 'b') return { kind: 'binary', bytes };
    throw new Error(`wsbridge: bad frame event "${data.slice(0, 8)}"`);
  }
  return { kind: 'text', text: data };
}

// ---------------------------------------------------------------------------------------------
// Transports: WebSocket, then SSE + POST, then long-polling + POST

const CONNECTING = 0;
const CLOSED = 3;
export const TRANSPORTS = Object.freeze(['websocket', 'sse', 'polling']);
const TRANSPORT_DEFAULTS = {
  transports: TRANSPORTS,
  forceTransport: undefined,
  transportTimeout: 5000,
  fallbackProbeInterval: 30000,
  brokenWebSocketMemoryMs: 10 * 60 * 1000,
  welcome: undefined, // wait for the welcome on a WebSocket; default: when a fallback follows
  protocols: undefined,
  WebSocket: undefined,
  EventSource: undefined,
  fetch: undefined,
  sessionStorage: undefined,
};
const STREAM_RETRIES = 3; // a lost stream, a failed poll or POST: tries before the session is given up
const MAX_POST_MESSAGES = 256;
const MAX_POST_BYTES = 256 * 1024;

function defaultStorage() {
  try {
    return globalThis.sessionStorage ?? null; // may throw in a sandboxed frame
  } catch {
    return null;
  }
}

function brokenKey(url) {
  return `wsbridge.ws-broken:${url.origin}${url.pathname}`;
}

/** True while the WebSocket to `url` is remembered as broken in `storage` (sessionStorage). */
export function webSocketRemembered(storage, url) {
  try {
    const until = Number(storage?.getItem(brokenKey(url)));
    return until > Date.now();
  } catch {
    return false;
  }
}

/** Remembers (ms > 0) or forgets (ms = 0) that the WebSocket to `url` is broken. */
export function rememberWebSocketBroken(storage, url, ms) {
  try {
    if (ms > 0) storage?.setItem(brokenKey(url), String(Date.now() + ms));
    else storage?.removeItem(brokenKey(url));
  } catch {
    // storage full or disabled: the next page load tries the WebSocket again, that is all
  }
}

function fallbackUrl(wsUrl, kind, params) {
  const url = new URL(wsUrl.href);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  url.pathname = `/_wsbridge/${kind}${wsUrl.pathname}`;
  url.hash = '';
  if (params) url.search = new URLSearchParams(params).toString();
  return url.toString();
}

function crossOrigin(href) {
  const here = globalThis.location?.origin;
  return Boolean(here) && here !== 'null' && new URL(href).origin !== here;
}

/**
 * One wsbridge session on the first transport that works, WebSocket-like (readyState, send,
 * close, binaryType, onopen/onmessage/onclose/onerror) plus `transport`, `onlost` and
 * `ontransport`. On a fallback it tries a WebSocket every fallbackProbeInterval and, once one
 * works, moves the session itself onto it (see _startMove).
 */
export class WsbridgeSocket {
  constructor(url, options = {}) {
    this._opts = { ...TRANSPORT_DEFAULTS, ...options };
    this.url = String(url);
    const base = globalThis.location ? globalThis.location.href : undefined;
    this._wsUrl = new URL(this.url, base);
    // Each may be injected (Node has no EventSource), or null for none.
    const given = (name, fallback) => (this._opts[name] === undefined ? fallback : this._opts[name]);
    this._WebSocket = given('WebSocket', globalThis.WebSocket);
    this._EventSource = given('EventSource', globalThis.EventSource);
    this._fetch = given('fetch', globalThis.fetch && globalThis.fetch.bind(globalThis));
    this._storage = this._opts.sessionStorage === undefined ? defaultStorage() : this._opts.sessionStorage;
    this._binaryType = 'blob';
    this.readyState = CONNECTING;
    this.transport = null;
    this.session = null; // the welcome
    this.onopen = this.onmessage = this.onclose = this.onerror = this.onlost = this.ontransport = null;

    this._order = this._transportOrder();
    this._welcome = this._opts.welcome ?? !(this._order.length === 1 && this._order[0] === 'websocket');
    this._index = 0;
    this._attempt = null;
    this._carrier = null; // the open WebSocket, or the fallback session
    this._move = null; // moving the fallback session to a WebSocket: {fb, ws, timer, skip}
    this._moveTimer = null;
    this._webSocketFailed = false;
    this._constructing = true;
    try {
      this._tryNext();
    } finally {
      this._constructing = false;
    }
  }

  get binaryType() {
    return this._binaryType;
  }

  set binaryType(type) {
    this._binaryType = type;
    for (const ws of [this._attempt?.ws, this._move?.ws]) if (ws) ws.binaryType = type;
  }

  get bufferedAmount() {
    return this._carrier?.bufferedAmount ?? 0;
  }

  _transportOrder() {
    const o = this._opts;
    const wanted = o.forceTransport ? [o.forceTransport] : [...o.transports];
    const usable = {
      websocket: typeof this._WebSocket === 'function',
      sse: typeof this._EventSource === 'function' && typeof this._fetch === 'function',
      polling: typeof this._fetch === 'function',
    };
    let order = wanted.filter((t) => usable[t]);
    // A WebSocket remembered broken is skipped while something else may work.
    if (!o.forceTransport && order.length > 1 && webSocketRemembered(this._storage, this._wsUrl)) {
      order = order.filter((t) => t !== 'websocket');
    }
    if (order.length === 0) {
      throw new TypeError(wanted.length === 1 && wanted[0] === 'websocket'
        ? 'wsbridge: no WebSocket implementation (pass options.WebSocket)'
        : `wsbridge: none of the transports ${wanted.join(', ')} is available here`);
    }
    return order;
  }

  _tryNext() {
    const kind = this._order[this._index++];
    if (kind === undefined) {
      const last = this._attempt?.failure || {};
      this._finish(last.code ?? 1006, last.reason ?? 'no transport could connect', false);
      return;
    }
    const attempt = { kind, done: false, timer: null, failure: null };
    this._attempt = attempt;
    if (this._welcome) {
      attempt.timer = setTimeout(() => this._attemptFailed(attempt, { reason: `${kind}: no welcome` }),
        this._opts.transportTimeout);
    }
    try {
      if (kind === 'websocket') this._startWebSocket(attempt);
      else attempt.session = new FallbackSession(this, kind, attempt);
    } catch (err) {
      // The only transport: a bad URL or options are the caller's to see, as with a WebSocket.
      if (this._constructing && this._order.length === 1) {
        clearTimeout(attempt.timer);
        throw err;
      }
      this._attemptFailed(attempt, { reason: String(err?.message || err) });
    }
  }

  _attemptFailed(attempt, failure) {
    if (attempt !== this._attempt || attempt.done) return;
    attempt.done = true;
    attempt.failure = failure;
    clearTimeout(attempt.timer);
    if (attempt.ws) discard(attempt.ws);
    attempt.session?.stop();
    if (attempt.kind === 'websocket') this._webSocketFailed = true;
    if (this.readyState === CONNECTING) this._tryNext();
    else this._finish(failure.code ?? 1006, failure.reason ?? '', false); // closed while connecting
  }

  _opened(attempt, carrier) {
    if (attempt !== this._attempt || attempt.done) return false;
    attempt.done = true;
    clearTimeout(attempt.timer);
    this._carrier = carrier;
    this.transport = attempt.kind;
    this.readyState = 1;
    const brokenMs = this._opts.brokenWebSocketMemoryMs;
    if (attempt.kind !== 'websocket' && this._webSocketFailed) rememberWebSocketBroken(this._storage, this._wsUrl, brokenMs);
    if (attempt.kind === 'websocket' && this._welcome) rememberWebSocketBroken(this._storage, this._wsUrl, 0);
    this.onopen?.({ type: 'open' });
    this._scheduleMove();
    return true;
  }

  _startWebSocket(attempt) {
    let url = this.url;
    if (this._welcome) {
      const u = new URL(this._wsUrl.href);
      u.searchParams.set('_wsb', 'welcome');
      url = u.toString();
    }
    const ws = this._newWebSocket(url);
    attempt.ws = ws;
    ws.onopen = () => {
      if (!this._welcome) this._opened(attempt, ws);
    };
    ws.onmessage = (event) => {
      if (this._carrier === ws) {
        this._deliver(event.data);
        return;
      }
      if (attempt.done) return;
      let welcome = null;
      if (typeof event.data === 'string' && event.data[0] === '{') {
        try {
          welcome = JSON.parse(event.data);
        } catch {
          // not ours
        }
      }
      if (welcome?.type === 'welcome') {
        this.session = welcome;
        this._opened(attempt, ws);
      } else if (this._opened(attempt, ws)) {
        // A bridge that sends no welcome (older than FALLBACK.md) but talks first: it works.
        this._deliver(event.data);
      }
    };
    ws.onclose = (event) => {
      if (this._carrier === ws) this._finish(event.code, event.reason || '', event.wasClean);
      else this._attemptFailed(attempt, { code: event.code, reason: event.reason || '' });
    };
    ws.onerror = () => {};
  }

  _newWebSocket(url) {
    const { protocols } = this._opts;
    const ws = protocols === undefined ? new this._WebSocket(url) : new this._WebSocket(url, protocols);
    ws.binaryType = this._binaryType;
    return ws;
  }

  // ----- moving the session to a WebSocket (docs/FALLBACK.md, "Moving a session to a WebSocket")
  //
  // While a fallback carries the session, a WebSocket is tried every fallbackProbeInterval, and
  // the server moves the session itself onto it: the same session, its subscriptions, its queue
  // and its place in the message stream. The fallback first stops starting POSTs (what the
  // application sends meanwhile waits, in order) and waits for the one in flight, since a POST
  // after the move would find no session. Then the upgrade `_wsb=resume&s=TOKEN&last=N` goes out.
  // Its welcome (resumed, `from`: F) makes the WebSocket the carrier: the fallback is stopped
  // (its `moved` and the end of its request are expected), what waited goes out on the WebSocket
  // in order, and the server sends the messages from F on, in order. What the fallback delivered
  // after the upgrade went out (ids N+1... up to the last it delivered) is skipped there, so the
  // move is exact: nothing lost, nothing twice, in either direction (what the server's resume
  // buffer no longer had is reported as a `lost` control's would be). A WebSocket that brings no
  // welcome within transportTimeout, fails or is refused (404: the server no longer knows the
  // session there, or a proxy's refusal) is closed and remembered as broken; the fallback carries
  // on with what waited. If the session moved all the same (its welcome was lost, or came late),
  // the fallback finds it gone and the socket closes (1006), as any lost session does.

  _scheduleMove() {
    clearTimeout(this._moveTimer);
    const o = this._opts;
    if (this.readyState === 1 && this._carrier instanceof FallbackSession && o.fallbackProbeInterval > 0
        && !o.forceTransport && o.transports.includes('websocket') && typeof this._WebSocket === 'function') {
      this._moveTimer = setTimeout(() => this._startMove(), o.fallbackProbeInterval);
    }
  }

  _startMove() {
    const fb = this._carrier;
    const move = { fb, ws: null, timer: null, skip: 0 };
    this._move = move;
    fb.freeze(() => {
      if (this._move !== move || move.ws) return;
      if (fb.stopped) return this._moveFailed(move);
      const url = new URL(this._wsUrl.href); // the route's own query (access_token...) stays
      url.searchParams.set('_wsb', 'resume');
      url.searchParams.set('s', fb.token);
      url.searchParams.set('last', String(fb.lastId));
      move.timer = setTimeout(() => this._moveFailed(move), this._opts.transportTimeout);
      let ws;
      try {
        ws = move.ws = this._newWebSocket(url.toString());
      } catch {
        return this._moveFailed(move);
      }
      ws.onmessage = (event) => {
        if (this._carrier === ws) {
          if (move.skip > 0) move.skip -= 1;
          else this._deliver(event.data);
          return;
        }
        let welcome = null;
        try {
          welcome = typeof event.data === 'string' ? JSON.parse(event.data) : null;
        } catch {
          // not a welcome
        }
        if (welcome?.type === 'welcome' && welcome.resumed === true) this._moved(move, welcome);
        else this._moveFailed(move);
      };
      ws.onclose = (event) => {
        if (this._carrier === ws) this._finish(event.code, event.reason || '', event.wasClean);
        else this._moveFailed(move);
      };
      ws.onerror = () => {};
    });
  }

  _moved(move, welcome) {
    const { fb, ws } = move;
    this._move = null;
    clearTimeout(move.timer);
    fb.stop(); // quietly: the session goes on, here
    const had = fb.lastId; // delivered by the fallback, some perhaps after the upgrade went out
    move.skip = Math.max(0, had - Number(welcome.from) + 1) || 0;
    this._carrier = ws;
    this._attempt = { kind: 'websocket', done: true, timer: null, ws };
    const previous = this.transport;
    this.transport = 'websocket';
    rememberWebSocketBroken(this._storage, this._wsUrl, 0);
    for (const m of fb.queue) ws.send(m.data);
    const lost = welcome.lost;
    if (lost && Math.max(lost.from, had + 1) <= lost.to) this.onlost?.({ from: Math.max(lost.from, had + 1), to: lost.to });
    this.ontransport?.({ type: 'transport', transport: 'websocket', previous });
  }

  _moveFailed(move) {
    if (this._move !== move) return;
    this._move = null;
    clearTimeout(move.timer);
    if (move.ws) {
      discard(move.ws);
      rememberWebSocketBroken(this._storage, this._wsUrl, this._opts.brokenWebSocketMemoryMs);
    }
    if (move.fb.stopped) {
      this._finish(1006, 'the fallback session is gone', false);
      return;
    }
    move.fb.thaw();
    this._scheduleMove();
  }

  // From the carrier: a message, as a WebSocket would hand it over.
  _deliver(data) {
    if (this.readyState !== 1) return;
    this.onmessage?.({ type: 'message', data });
  }

  _deliverBytes(bytes) {
    const data = this._binaryType === 'blob' && typeof Blob === 'function'
      ? new Blob([bytes])
      : bytes.slice().buffer;
    this._deliver(data);
  }

  // The session ended (or no transport could open one).
  _finish(code, reason, wasClean) {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    const attempt = this._attempt;
    if (attempt && !attempt.done) {
      attempt.done = true;
      clearTimeout(attempt.timer);
      if (attempt.ws) discard(attempt.ws);
    }
    clearTimeout(this._moveTimer);
    if (this._move) {
      clearTimeout(this._move.timer);
      if (this._move.ws) discard(this._move.ws); // (a session already moved there ends with it)
      this._move = null;
    }
    this._attempt?.session?.stop();
    if (this._carrier && this._carrier !== this._attempt?.ws) this._carrier.stop?.();
    const event = { type: 'close', code, reason, wasClean };
    // Within the constructor nobody listens yet.
    if (this._constructing) queueMicrotask(() => this.onclose?.(event));
    else this.onclose?.(event);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error(`wsbridge: send() while not open (${this.readyState})`);
    if (this._carrier !== this._attempt?.ws && typeof data !== 'string' && !asBytes(data)
        && !(typeof Blob === 'function' && data instanceof Blob)) {
      throw new TypeError('wsbridge: send() takes a string, an ArrayBuffer, a view of one or a Blob');
    }
    this._carrier.send(data);
  }

  close(code = 1000, reason = '') {
    if (this.readyState === CLOSED) return;
    const ws = this._attempt?.ws;
    if (ws && (this._carrier === ws || !this._welcome)) {
      // As a WebSocket: closing, then the close event.
      this.readyState = 2;
      ws.close(code, reason);
      return;
    }
    // A fallback session: the server gets a close record; the close event comes asynchronously,
    // as a WebSocket's does.
    this._carrier?.closeSession?.(code, reason);
    this._constructing = true;
    this._finish(code, reason, true);
    this._constructing = false;
  }
}

function detachSocket(ws) {
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = () => {};
}

function discard(ws) {
  detachSocket(ws);
  try {
    ws.close();
  } catch {
    // never opened
  }
}

function sleepMs(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// A fallback session: its downstream (an SSE stream, or polls) and its upstream POSTs.
class FallbackSession {
  constructor(socket, kind, attempt) {
    this.socket = socket;
    this.kind = kind;
    this.attempt = attempt;
    this.token = null;
    this.lastId = 0;
    this.stopped = false;
    this.failures = 0; // lost streams or failed polls in a row
    this.es = null;
    this.streamTimer = null;
    this.poll = null; // the AbortController of the poll in flight
    this.pollTimeoutMs = 25000;
    this.credentials = 'include';
    // Upstream: messages numbered from 1, one POST in flight.
    this.nextSeq = 1;
    this.queue = []; // {seq, data}
    this.inflight = null; // {firstSeq, messages, body}
    this.frozen = null; // while moving to a WebSocket: called once no POST is in flight (freeze)
    this.bufferedAmount = 0;
    if (kind === 'sse') this.openStream(fallbackUrl(socket._wsUrl, 'sse'));
    else this.pollLoop(fallbackUrl(socket._wsUrl, 'poll'));
  }

  open() {
    return this.socket._carrier === this;
  }

  // ----- downstream

  onWelcome(welcome) {
    this.failures = 0;
    clearTimeout(this.streamTimer);
    if (this.token === null) {
      this.token = welcome.session;
      this.pollTimeoutMs = (Number(welcome.poll_timeout) || 25) * 1000;
      this.socket.session = welcome;
      this.socket._opened(this.attempt, this);
    }
  }

  onMessage(id, message) {
    if (!this.open()) return;
    if (id <= this.lastId) return; // a resumed stream's repeat
    this.lastId = id;
    if (message.kind === 'binary') this.socket._deliverBytes(message.bytes);
    else this.socket._deliver(message.text);
  }

  onControl(control) {
    switch (control.type) {
      case 'welcome':
        this.onWelcome(control);
        break;
      case 'lost':
        if (Number(control.to) > this.lastId) this.lastId = Number(control.to);
        if (this.open()) this.socket.onlost?.({ from: control.from, to: control.to });
        break;
      case 'reconnect':
        if (this.kind === 'sse') this.resumeStream(0);
        break;
      case 'close':
        this.end(control.code ?? 1005, control.reason ?? '', true);
        break;
      case 'unknown_session': // (what a stream says instead of 404: an EventSource cannot read a status)
      case 'moved':
        this.gone();
        break;
      default:
        break;
    }
  }

  // The session is not here (any more). While a WebSocket may be taking it over, that decides.
  gone() {
    if (this.socket._move) this.stop();
    else this.end(1006, 'the fallback session is gone', false);
  }

  // A lost stream or a failed poll: resumed a few times, then the session is given up.
  failed(reason) {
    if (this.stopped) return false;
    if (!this.open()) {
      this.socket._attemptFailed(this.attempt, { reason: `${this.kind}: ${reason}` });
      return false;
    }
    this.failures += 1;
    if (this.failures > STREAM_RETRIES) {
      this.end(1006, `${this.kind}: ${reason}`, false);
      return false;
    }
    return true;
  }

  openStream(url) {
    const es = new this.socket._EventSource(url, { withCredentials: crossOrigin(url) });
    this.es = es;
    // A resumed stream must bring its welcome in time too (the attempt's own timer covers the first).
    clearTimeout(this.streamTimer);
    if (this.open()) this.streamTimer = setTimeout(() => es.onerror?.(), this.socket._opts.transportTimeout);
    const handle = (type) => (event) => {
      if (this.es !== es || this.stopped) return;
      let decoded;
      try {
        decoded = decodeSseEvent(type, event.data);
      } catch (err) {
        this.socket.onerror?.({ type: 'error', error: err });
        return;
      }
      if (decoded.kind === 'control') this.onControl(decoded.control);
      else this.onMessage(Number(event.lastEventId), decoded);
    };
    es.onmessage = handle('message');
    es.addEventListener('frame', handle('frame'));
    es.addEventListener('control', handle('control'));
    es.onerror = () => {
      if (this.es !== es) return;
      // Resumed by us, with the session's token: never by the EventSource, on the opening URL.
      this.closeStream();
      if (this.failed('the stream was lost')) this.resumeStream(this.failures > 1 ? 250 * 2 ** this.failures : 50);
    };
  }

  closeStream() {
    const es = this.es;
    this.es = null;
    if (!es) return;
    es.onmessage = es.onerror = null;
    es.close();
  }

  resumeStream(delayMs) {
    this.closeStream();
    setTimeout(() => {
      if (this.stopped) return;
      const url = fallbackUrl(this.socket._wsUrl, 'sse', { s: this.token, last: String(this.lastId) });
      try {
        this.openStream(url);
      } catch (err) {
        if (this.failed(String(err))) this.resumeStream(500);
      }
    }, delayMs);
  }

  async pollLoop(openUrl) {
    let url = openUrl;
    while (!this.stopped) {
      const abort = new AbortController();
      this.poll = abort;
      const limit = setTimeout(() => abort.abort(), this.pollTimeoutMs + this.socket._opts.transportTimeout);
      let body = null;
      let status = 0;
      try {
        const res = await this.socket._fetch(url, { credentials: this.credentials, cache: 'no-store', signal: abort.signal });
        status = res.status;
        if (res.ok) body = parsePollBody(new Uint8Array(await res.arrayBuffer()));
      } catch (err) {
        status = -1;
      } finally {
        clearTimeout(limit);
      }
      if (this.stopped) return;
      if (body === null) {
        if (status === 404 && this.open()) {
          this.gone();
          return;
        }
        if (!this.failed(status < 0 ? 'the poll failed' : `poll answered ${status}`)) return;
        await sleepMs(250 * 2 ** this.failures);
        continue;
      }
      this.failures = 0;
      let id = body.firstId;
      for (const r of body.records) {
        if (this.stopped) return;
        if (r.kind === 'c') {
          let control;
          try {
            control = JSON.parse(utf8Decoder.decode(r.bytes));
          } catch (err) {
            this.socket.onerror?.({ type: 'error', error: err });
            continue;
          }
          this.onControl(control);
        } else {
          this.onMessage(id, r.kind === 't' ? { kind: 'text', text: utf8Decoder.decode(r.bytes) } : { kind: 'binary', bytes: r.bytes });
          id += 1;
        }
      }
      if (this.token === null) {
        if (!this.failed('no welcome in the first poll')) return;
        continue;
      }
      url = fallbackUrl(this.socket._wsUrl, 'poll', { s: this.token, last: String(this.lastId) });
    }
  }

  // ----- upstream

  send(data) {
    const size = typeof data === 'string' ? data.length : (data.byteLength ?? data.size ?? 0);
    this.queue.push({ seq: this.nextSeq++, data, size });
    this.bufferedAmount += size;
    if (!this.inflight) this.post();
  }

  async post() {
    if (this.inflight || this.queue.length === 0 || this.stopped || this.frozen) return;
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < MAX_POST_MESSAGES && (n === 0 || bytes + this.queue[n].size <= MAX_POST_BYTES)) {
      bytes += this.queue[n].size;
      n += 1;
    }
    const messages = this.queue.splice(0, n);
    const flight = { messages, body: null };
    this.inflight = flight;
    let tries = 0;
    while (!this.stopped) {
      let status = -1;
      let answer = null;
      try {
        // Blobs become bytes here, in order; the body is then sent as it is on every retry.
        if (!flight.body) {
          const datas = await Promise.all(messages.map((m) => (typeof Blob === 'function' && m.data instanceof Blob ? m.data.arrayBuffer() : m.data)));
          flight.body = encodePostBody(messages[0].seq, datas);
        }
        const url = fallbackUrl(this.socket._wsUrl, 'send', { s: this.token });
        const res = await this.socket._fetch(url, {
          method: 'POST', body: flight.body, credentials: this.credentials, cache: 'no-store',
          headers: { 'Content-Type': 'text/plain' },
        });
        status = res.status;
        answer = await res.json().catch(() => null);
      } catch {
        // a network failure: retried below
      }
      if (this.stopped) return;
      if (status === 200 || status === 409) {
        // Applied up to `next` (200), or expects `expected` (409): what is before is done.
        const next = Number(status === 200 ? answer?.next : answer?.expected);
        const rest = Number.isFinite(next) ? messages.filter((m) => m.seq >= next) : [];
        if (status === 409 && (!Number.isFinite(next) || next < messages[0].seq)) {
          this.end(1006, 'the upstream lost its place', false);
          return;
        }
        for (const m of messages) if (!rest.includes(m)) this.bufferedAmount -= m.size;
        this.queue.unshift(...rest);
        break;
      }
      if (status === 404) return this.end(1006, 'the fallback session is gone', false);
      if (status === 413) return this.end(1009, 'message too big', false);
      if (status === 400) return this.end(1002, 'the bridge refused a POST as malformed', false);
      // Network failure, or a proxy's 5xx: the same body again (the bridge skips what it applied).
      tries += 1;
      if (tries > STREAM_RETRIES) return this.end(1006, `POST failed (${status})`, false);
      await sleepMs(250 * 2 ** tries);
    }
    this.inflight = null;
    if (this.frozen) this.frozen();
    else this.post();
  }

  // Moving to a WebSocket: no new POST (what the application sends waits in the queue); `idle` is
  // called once none is in flight, or when the session stops. thaw() undoes it.
  freeze(idle) {
    this.frozen = idle;
    if (!this.inflight || this.stopped) idle();
  }

  thaw() {
    this.frozen = null;
    this.post();
  }

  // The application closes: the server is told (a close record after whatever is still unsent,
  // with sequence numbers it skips if it had them), so the session ends now rather than when the
  // server stops hearing from it. Fire and forget (keepalive: it may outlive the page).
  closeSession(code, reason) {
    if (this.token === null || this.stopped) return;
    const pending = [...(this.inflight?.messages ?? []), ...this.queue];
    const blob = pending.some((m) => typeof Blob === 'function' && m.data instanceof Blob);
    const messages = blob ? [] : pending;
    const first = messages.length > 0 ? messages[0].seq : this.nextSeq;
    const closeCode = code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000;
    let body;
    try {
      body = encodePostBody(first, messages.map((m) => m.data),
        { type: 'close', code: closeCode, reason: String(reason).slice(0, 123) });
    } catch {
      return;
    }
    const url = fallbackUrl(this.socket._wsUrl, 'send', { s: this.token });
    this.socket._fetch(url, {
      method: 'POST', body, credentials: this.credentials, cache: 'no-store', keepalive: true,
      headers: { 'Content-Type': 'text/plain' },
    }).catch(() => {});
  }

  end(code, reason, wasClean) {
    this.stop();
    if (this.open()) this.socket._finish(code, reason, wasClean);
    else this.socket._attemptFailed(this.attempt, { code, reason });
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.streamTimer);
    this.closeStream();
    this.poll?.abort();
    this.frozen?.();
  }
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

  _socketOptions() {
    const o = this._options;
    return {
      protocols: o.protocols, WebSocket: o.WebSocket, EventSource: o.EventSource, fetch: o.fetch,
      sessionStorage: o.sessionStorage, transports: o.transports, forceTransport: o.forceTransport,
      transportTimeout: o.transportTimeout, brokenWebSocketMemoryMs: o.brokenWebSocketMemoryMs,
      fallbackProbeInterval: o.fallbackProbeInterval,
    };
  }

  _openSocket(first) {
    let ws;
    try {
      ws = new WsbridgeSocket(this._buildUrl(), this._socketOptions());
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
    // A fallback session's resume buffer overflowed: like the bridge's own drop count.
    ws.onlost = ({ from, to }) => {
      if (this._ws === ws) this._emit('status', { dropped: Math.max(0, to - from + 1) });
    };
    // The socket moved its session to a WebSocket: the same connection, another transport.
    ws.ontransport = () => {
      if (this._ws === ws) this._noteTransport();
    };
  }

  _noteTransport() {
    const transport = this._ws.transport;
    if (transport === this._lastTransport) return;
    const previous = this._lastTransport;
    this._lastTransport = transport;
    this._emit('transport', { transport, previous });
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
    this._noteTransport();
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
    ws.onopen = ws.onmessage = ws.onclose = ws.onlost = ws.ontransport = null;
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
      const expire = () => {
        // While the socket moves its session to a WebSocket the ping may wait unsent: so does this.
        if (this._ws?._move) {
          this._pongTimer = setTimeout(expire, this._options.pongTimeoutMs);
          return;
        }
        this._pongTimer = null;
        if (this._ws) this._dropSocket(CLOSE_PONG_TIMEOUT, 'pong timeout');
      };
      this._pongTimer = setTimeout(expire, this._options.pongTimeoutMs);
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
