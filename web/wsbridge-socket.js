// wsbridge-socket.js: WsbridgeSocket, one wsbridge session on the first transport that works
// (WebSocket, then SSE, then long-polling: docs/FALLBACK.md), WebSocket-like, and the memory of a
// broken WebSocket (sessionStorage). Moving a fallback session onto a WebSocket is in
// wsbridge-move.js, the fallback session itself in wsbridge-fallback.js.

import { FallbackSession } from './wsbridge-fallback.js';
import { discard, SessionMove } from './wsbridge-move.js';
import { asBytes } from './wsbridge-wire.js';

const CONNECTING = 0;
const CLOSED = 3;
const SERVICE_RESTART = 1012;
export const TRANSPORTS = Object.freeze(['websocket', 'sse', 'polling']);
const TRANSPORT_DEFAULTS = {
  transports: TRANSPORTS,
  forceTransport: undefined,
  transportTimeout: 5000,
  postTimeout: undefined, // ms; default: the welcome's poll_timeout + transportTimeout (wsbridge-upstream.js)
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

// A transport remembered as broken for a URL: 'ws' (the WebSocket) or 'sse' (streams that never
// brought anything after their welcome, behind a proxy that holds them: wsbridge-fallback.js).
function brokenKey(kind, url) {
  return `wsbridge.${kind}-broken:${url.origin}${url.pathname}`;
}

function remembered(storage, key) {
  try {
    const until = Number(storage?.getItem(key));
    return until > Date.now();
  } catch {
    return false;
  }
}

function remember(storage, key, ms) {
  try {
    if (ms > 0) storage?.setItem(key, String(Date.now() + ms));
    else storage?.removeItem(key);
  } catch {
    // storage full or disabled: the next page load tries the transport again, that is all
  }
}

/** True while the WebSocket to `url` is remembered as broken in `storage` (sessionStorage). */
export function webSocketRemembered(storage, url) {
  return remembered(storage, brokenKey('ws', url));
}

/** Remembers (ms > 0) or forgets (ms = 0) that the WebSocket to `url` is broken. */
export function rememberWebSocketBroken(storage, url, ms) {
  remember(storage, brokenKey('ws', url), ms);
}

/**
 * What an application's handler throws is the application's: reported as a browser reports an
 * exception from an event listener (reportError, or rethrown on a task of its own where there is
 * none), and never allowed to cut short the socket's own work around the call (a move to a
 * WebSocket left unscheduled, a timer's callback ended half-way).
 */
export function reportHandlerError(err) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(err);
  else setTimeout(() => { throw err; });
}

/**
 * One wsbridge session on the first transport that works, WebSocket-like (readyState, send,
 * close, binaryType, onopen/onmessage/onclose/onerror) plus `transport`, `onlost` and
 * `ontransport`. On a fallback it tries a WebSocket every fallbackProbeInterval and, once one
 * works, moves the session itself onto it (wsbridge-move.js).
 */
export class WsbridgeSocket {
  constructor(url, options = {}) {
    this._opts = { ...TRANSPORT_DEFAULTS, ...options };
    this.url = String(url);
    const base = globalThis.location ? globalThis.location.href : undefined;
    this._wsUrl = new URL(this.url, base);
    // Each may be injected, or null for none. SSE is read over fetch (wsbridge-sse.js, which sees
    // the bridge's heartbeats), or with the EventSource class given; EventSource null: no SSE.
    const given = (name, fallback) => (this._opts[name] === undefined ? fallback : this._opts[name]);
    this._WebSocket = given('WebSocket', globalThis.WebSocket);
    this._EventSource = given('EventSource', null);
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
    this._move = null; // moving the fallback session to a WebSocket: a SessionMove
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
      sse: typeof this._fetch === 'function'
        && (this._opts.EventSource === undefined || typeof this._EventSource === 'function'),
      polling: typeof this._fetch === 'function',
    };
    let order = wanted.filter((t) => usable[t]);
    // A WebSocket remembered broken is skipped while something else may work.
    if (!o.forceTransport && order.length > 1 && webSocketRemembered(this._storage, this._wsUrl)) {
      order = order.filter((t) => t !== 'websocket');
    }
    // So are SSE streams remembered as never working here, when polling may take their place:
    // each new session spent four stream timeouts (minutes) finding that out again.
    if (!o.forceTransport && order.includes('polling') && remembered(this._storage, brokenKey('sse', this._wsUrl))) {
      order = order.filter((t) => t !== 'sse');
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
    if (attempt.kind !== 'websocket' && this._webSocketFailed) this._rememberWebSocketBroken(true);
    if (attempt.kind === 'websocket' && this._welcome) this._rememberWebSocketBroken(false);
    this._fire('onopen', { type: 'open' });
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

  _rememberWebSocketBroken(broken) {
    rememberWebSocketBroken(this._storage, this._wsUrl, broken ? this._opts.brokenWebSocketMemoryMs : 0);
  }

  // SSE streams did not work here (FallbackSession.toPolling): the next sessions start on polling.
  _rememberSseBroken() {
    remember(this._storage, brokenKey('sse', this._wsUrl), this._opts.brokenWebSocketMemoryMs);
  }

  _newWebSocket(url) {
    const { protocols } = this._opts;
    const ws = protocols === undefined ? new this._WebSocket(url) : new this._WebSocket(url, protocols);
    ws.binaryType = this._binaryType;
    return ws;
  }

  // ----- moving the session to a WebSocket (wsbridge-move.js): while a fallback carries the
  // session, a WebSocket is tried every fallbackProbeInterval, and the server moves the session
  // itself onto it; a try that fails schedules the next.

  _scheduleMove() {
    clearTimeout(this._moveTimer);
    const o = this._opts;
    if (this.readyState === 1 && this._carrier instanceof FallbackSession && o.fallbackProbeInterval > 0
        && !o.forceTransport && o.transports.includes('websocket') && typeof this._WebSocket === 'function') {
      this._moveTimer = setTimeout(() => this._startMove(), o.fallbackProbeInterval);
    }
  }

  _startMove() {
    const move = new SessionMove(this, this._carrier);
    this._move = move;
    move.start();
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
    this._move?.cancel();
    this._move = null;
    this._attempt?.session?.stop();
    if (this._carrier && this._carrier !== this._attempt?.ws) this._carrier.stop?.();
    const event = { type: 'close', code, reason, wasClean };
    // Within the constructor nobody listens yet.
    if (this._constructing) queueMicrotask(() => this._fire('onclose', event));
    else this._fire('onclose', event);
  }

  // Calls the application's handler `name` (onopen, onclose, onerror, onlost, ontransport);
  // false when there is none.
  _fire(name, event) {
    const handler = this[name];
    if (typeof handler !== 'function') return false;
    try {
      handler.call(this, event);
    } catch (err) {
      reportHandlerError(err);
    }
    return true;
  }

  // An error of the session's (what a message handler threw, an event it could not read): to
  // onerror, or reported as uncaught when nobody listens there (it was lost without a word).
  _reportError(err) {
    if (!this._fire('onerror', { type: 'error', error: err })) reportHandlerError(err);
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
