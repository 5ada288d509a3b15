// wsbridge-connection.js: the connection half of WsbridgeClient (wsbridge.js): its socket, the
// reconnects with backoff, resubscribing and flushing the queue on open, and the
// application-level ping. The frames it carries (requests matched to their answers, messages
// dispatched to handlers) are its base class's, in wsbridge-frames.js. ClientConnection is
// WsbridgeClient's base class and nothing else: it uses the fields that WsbridgeClient's
// constructor sets and its _emit.

import { ClientFrames, WsbridgeError } from './wsbridge-frames.js';
import { WsbridgeSocket } from './wsbridge-socket.js';

const OPEN = 1; // WebSocket.OPEN, spelled out so that WebSocket-like classes without statics work

// Close codes after which reconnecting would only be refused again.
const NO_RECONNECT_CODES = new Set([1008]);
// "Service restart" (docs/PROTOCOL.md): the bridge is draining, planned rather than failed. Its
// reason may carry `retry_ms=N`, the delay this connection was given (jittered by the bridge so
// that its clients do not all come back at once); without one a delay of our own is drawn.
const CLOSE_SERVICE_RESTART = 1012;
const MAX_RESTART_DELAY_MS = 120000;
const RESTART_DELAY_MIN_MS = 500;
const RESTART_DELAY_MAX_MS = 5000;
const CLOSE_PONG_TIMEOUT = 4000;
// Errors after which a restored subscription is forgotten: retrying them cannot succeed.
const PERMANENT_SUBSCRIBE_ERRORS = new Set(['forbidden', 'bad_request']);

export class ClientConnection extends ClientFrames {
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
      fallbackProbeInterval: o.fallbackProbeInterval, postTimeout: o.postTimeout,
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
    // The backoff starts over once the connection has held a while (stableAfterMs): one
    // accepted and dropped at once, by a broken proxy or a bridge refusing after its welcome,
    // is a failed attempt, else such a peer was retried at the first delay for ever.
    clearTimeout(this._stableTimer);
    const stableAfter = this._options.reconnect.stableAfterMs ?? 5000;
    if (stableAfter > 0) {
      this._stableTimer = setTimeout(() => { this._attempt = 0; }, stableAfter);
    } else {
      this._attempt = 0;
    }
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
    clearTimeout(this._stableTimer);
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
    if (!willReconnect || this._closedByUser) return;
    if (code === CLOSE_SERVICE_RESTART) {
      // A planned restart, not a failure: the backoff starts over, after the delay asked for.
      this._attempt = 0;
      this._scheduleReconnect(this._restartDelay(reason));
    } else {
      this._scheduleReconnect();
    }
  }

  // The delay before reconnecting after a 1012: the bridge's `retry_ms=N` (at most 2 minutes), or
  // a random one of 0.5 to 5 s, never at once: every client of that bridge got the same close.
  _restartDelay(reason) {
    const hint = /(?:^|[^\w])retry_ms=(\d+)(?!\w)/.exec(reason);
    // (Never below the backoff's first delay: "retry_ms=0" closes on every open were a spin.)
    if (hint) return Math.min(MAX_RESTART_DELAY_MS, Math.max(this._options.reconnect.initialDelayMs, Number(hint[1])));
    const span = RESTART_DELAY_MAX_MS - RESTART_DELAY_MIN_MS;
    return Math.round(RESTART_DELAY_MIN_MS + span * this._options.random());
  }

  // `delayMs`: given (a 1012's), else the backoff's for this attempt.
  _scheduleReconnect(givenDelayMs) {
    const { initialDelayMs, maxDelayMs, factor, jitter } = this._options.reconnect;
    this._attempt += 1;
    let delayMs = givenDelayMs;
    if (delayMs === undefined) {
      const base = Math.min(maxDelayMs, initialDelayMs * factor ** (this._attempt - 1));
      // Jitter spreads the reconnects of many pages after a bridge restart.
      const spread = base * jitter * (this._options.random() * 2 - 1);
      delayMs = Math.max(0, Math.round(Math.min(maxDelayMs, base + spread)));
    }
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

  _closedError() {
    return new WsbridgeError('closed', 'the client is closed');
  }

  _notOpenError() {
    return new WsbridgeError('disconnected', `not connected (${this._state})`);
  }
}
