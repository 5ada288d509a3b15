// wsbridge-socket.js: WsbridgeSocket, one wsbridge session on the first transport that works
// (WebSocket, then SSE, then long-polling: docs/FALLBACK.md), WebSocket-like; the memory of a
// broken WebSocket (sessionStorage), and the move of a fallback session onto a WebSocket.

import { FallbackSession } from './wsbridge-fallback.js';
import { asBytes } from './wsbridge-wire.js';

const CONNECTING = 0;
const CLOSED = 3;
const SERVICE_RESTART = 1012;
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
    // A bridge that is restarting (1012) answered on this transport: it works, and the others
    // would only meet the same restart. The close goes to the client, which knows when to retry.
    const restarting = failure.code === SERVICE_RESTART;
    if (attempt.kind === 'websocket' && !restarting) this._webSocketFailed = true;
    if (this.readyState === CONNECTING && !restarting) this._tryNext();
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
        else this._moveFailed(move, event.code === SERVICE_RESTART);
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

  // `restarting`: the WebSocket was closed by a bridge that is restarting (1012), which says
  // nothing against WebSockets.
  _moveFailed(move, restarting = false) {
    if (this._move !== move) return;
    this._move = null;
    clearTimeout(move.timer);
    if (move.ws) {
      discard(move.ws);
      if (!restarting) rememberWebSocketBroken(this._storage, this._wsUrl, this._opts.brokenWebSocketMemoryMs);
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

