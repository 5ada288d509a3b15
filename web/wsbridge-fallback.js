// wsbridge-fallback.js: a session of wsbridge.js carried over HTTP (docs/FALLBACK.md) when the
// WebSocket does not work: its downstream (an SSE stream, or long-polls); its upstream POSTs are
// in wsbridge-upstream.js, the reading of its SSE stream in wsbridge-sse.js. FallbackSession is
// WsbridgeSocket's carrier (wsbridge-socket.js): it reports to its socket.

import { decodeSseEvent, parsePollBody, utf8Decoder } from './wsbridge-wire.js';
import { SseReader } from './wsbridge-sse.js';
import { Upstream } from './wsbridge-upstream.js';

const STREAM_RETRIES = 3; // a lost stream or a failed poll: tries before giving up (or toPolling)
// A stream that cannot be watched for silence (an EventSource, or a welcome without a heartbeat)
// and was up this long after its welcome was a success (proven).
const STREAM_STABLE_MS = 5000;
// A stream that brings nothing, not even the bridge's heartbeat comment (one every `heartbeat` s,
// the welcome says), for this many heartbeats plus transportTimeout is lost (watchStream).
const SILENT_HEARTBEATS = 2;
// The bridge keeps time on a tick of about a second: an empty poll is answered up to that long
// after poll_timeout (measured: 3 s for a poll_timeout of 2), which a poll's bound allows for
// besides transportTimeout (a poll given up just before its answer counted as a failure).
const BRIDGE_TICK_MS = 1000;
// An empty poll answered before half its poll_timeout was not held (a proxy or a server that
// answers at once): polled again at once, that was a loop of thousands of requests a second. The
// next poll waits this long, doubling while they come so, up to the maximum (or poll_timeout).
const HASTY_POLL_DELAY_MS = 250;
const HASTY_POLL_MAX_DELAY_MS = 5000;

// A welcome's number of seconds, when it is one a timer can hold (setTimeout takes at most
// 2^31 - 1 ms and fires at once beyond): else `fallback` (a broken or hostile welcome's
// -10 or 3e6 made every poll and POST time out at once, or the watchdog spin).
function seconds(value, fallback) {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 && n <= 86400 ? n : fallback;
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

// A fallback session: its downstream (an SSE stream, or polls) and its upstream POSTs.
export class FallbackSession {
  constructor(socket, kind, attempt) {
    this.socket = socket;
    this.kind = kind;
    this.attempt = attempt;
    this.token = null;
    this.lastId = 0;
    this.stopped = false;
    this.failures = 0; // lost streams or failed polls in a row
    this.es = null;
    this.opening = null; // the current stream's welcome: {es, reads, at, messages} (proven)
    this.streamTimer = null;
    this.resumeTimer = null;
    this.watchdog = null; // the stream's silence timer (watchStream)
    this.hastyPolls = 0; // empty polls answered at once, in a row (pollLoop)
    // Aborted by stop(): ends every sleep() at once (close() leaves no backoff's timer behind).
    this.life = new AbortController();
    this.heartbeatMs = 0; // the welcome's heartbeat (0: none announced, the stream is not watched)
    this.poll = null; // the AbortController of the poll in flight
    this.pollTimeoutMs = 25000;
    this.credentials = 'include';
    this.upstream = new Upstream(this); // messages numbered from 1, one POST in flight
    if (kind === 'sse') this.openStream(this.endpoint('sse'));
    else this.pollLoop(this.endpoint('poll'));
  }

  open() {
    return this.socket._carrier === this;
  }

  // The URL of one of the fallback endpoints (kind: sse, poll, send) for this session's route.
  endpoint(kind, params) {
    return fallbackUrl(this.socket._wsUrl, kind, params);
  }

  // ----- downstream

  onWelcome(welcome) {
    clearTimeout(this.streamTimer);
    this.heartbeatMs = seconds(welcome.heartbeat, 0) * 1000;
    const es = this.es;
    if (es) {
      // Where the stream stood at its welcome: what it brings after that proves it (proven).
      this.opening = { es, reads: es.reads ?? 0, at: Date.now(), messages: 0 };
      this.watchStream(es);
    }
    if (this.token === null) {
      this.token = welcome.session;
      this.pollTimeoutMs = seconds(welcome.poll_timeout, 25) * 1000;
      const limit = Number(welcome.max_post_bytes);
      if (Number.isSafeInteger(limit) && limit >= 1024) this.upstream.maxPostBytes = limit;
      this.socket.session = welcome;
      this.socket._opened(this.attempt, this);
    }
  }

  onMessage(id, message) {
    if (!this.open()) return;
    // Every message of the bridge has an id (a positive integer): one without, or with another,
    // would make lastId NaN and the resume point unusable (repeats, then a 400 on the resume).
    if (!Number.isSafeInteger(id) || id <= 0) {
      this.socket._reportError(new Error(`a message without a valid id (${id})`));
      return;
    }
    if (id <= this.lastId) return; // a resumed stream's repeat
    this.lastId = id;
    if (this.opening) this.opening.messages += 1;
    if (message.kind === 'binary') this.socket._deliverBytes(message.bytes);
    else this.socket._deliver(message.text);
  }

  onControl(control) {
    if (control === null || typeof control !== 'object') return; // (not one of ours)
    switch (control.type) {
      case 'welcome':
        this.onWelcome(control);
        break;
      case 'lost':
        if (Number(control.to) > this.lastId) this.lastId = Number(control.to);
        if (this.open()) this.socket._fire('onlost', { from: control.from, to: control.to });
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
    // Our own reader over fetch by default (it sees the heartbeats), else the EventSource given.
    const EventSourceClass = this.socket._EventSource;
    const es = EventSourceClass
      ? new EventSourceClass(url, { withCredentials: crossOrigin(url) })
      : new SseReader(url, this.socket._fetch, this.credentials);
    this.es = es;
    // A resumed stream must bring its welcome in time too (the attempt's own timer covers the first).
    clearTimeout(this.streamTimer);
    const welcomeWithin = this.socket._opts.transportTimeout;
    if (this.open()) this.streamTimer = setTimeout(() => this.lostStream(es, 'the stream was lost'), welcomeWithin);
    const handle = (type) => (event) => {
      if (this.es !== es || this.stopped) return;
      // (A bad event, or what the application's handlers throw, is reported; the stream goes on.)
      try {
        const decoded = decodeSseEvent(type, event.data);
        if (decoded.kind === 'control') this.onControl(decoded.control);
        else this.onMessage(Number(event.lastEventId), decoded);
      } catch (err) {
        this.socket._reportError(err);
      }
    };
    es.onmessage = handle('message');
    es.addEventListener('frame', handle('frame'));
    es.addEventListener('control', handle('control'));
    es.onerror = () => this.lostStream(es, 'the stream was lost');
  }

  lostStream(es, reason) {
    if (this.es !== es) return;
    // Its welcome came: the bridge knows the session, and the streams are what fail here.
    const answered = this.opening?.es === es;
    this.closeStream();
    if (answered && this.failures >= STREAM_RETRIES && this.toPolling()) return;
    // Resumed by us, with the session's token: never by the EventSource, on the opening URL.
    if (this.failed(reason)) this.resumeStream(this.failures > 1 ? 250 * 2 ** this.failures : 50);
  }

  // Whether a stream proved itself after its welcome, which forgives the lost ones before it
  // (closeStream). Its welcome alone proves nothing: a proxy may pass each stream's opening and
  // then end or hold it. What it brings in a later read than its welcome does (a heartbeat, a
  // message), or where reads cannot be seen (an EventSource) a message. A stream not watched for
  // silence may be quiet and well: its lasting STREAM_STABLE_MS proves it too. A watched one's
  // lasting does not: one that stalls lasts as long as its watchdog lets it (35 s with the
  // bridge's defaults), and forgiven for that, it was resumed for ever, never falling back.
  proven(es) {
    const o = this.opening;
    if (!o || o.es !== es) return false;
    if (es instanceof SseReader ? es.reads > o.reads : o.messages > 0) return true;
    return !this.watched(es) && Date.now() - o.at >= STREAM_STABLE_MS;
  }

  // SSE does not work here though the bridge answers its streams (a proxy that passes each one's
  // opening, then holds or ends it): the same session goes on over long-polls from its last id
  // (streams and polls carry a session alike, docs/FALLBACK.md), with what the application sent
  // still queued for its POSTs. Not where the socket may not poll (forceTransport 'sse',
  // transports without 'polling'): false, and the session ends as before.
  toPolling() {
    if (this.stopped || !this.open() || !this.socket._order.includes('polling')) return false;
    clearTimeout(this.streamTimer);
    clearTimeout(this.resumeTimer);
    this.kind = 'polling';
    this.failures = 0;
    const previous = this.socket.transport;
    this.socket.transport = 'polling';
    this.socket._rememberSseBroken();
    this.pollLoop(this.endpoint('poll', { s: this.token, last: String(this.lastId) }));
    this.socket._fire('ontransport', { type: 'transport', transport: 'polling', previous });
    return true;
  }

  // Once a stream's welcome came: a stream that goes silent without ending (a bridge or a proxy
  // that stalls) is lost, as one that fails. The bridge writes a heartbeat every `heartbeat` s
  // (within its one-second tick) whatever else it sends, so a healthy stream is never quiet much
  // longer than one: two of them tolerate one late or lost, and transportTimeout is the network's
  // margin, as for a poll (with the bridge's defaults: 35 s). Only our reader sees heartbeats:
  // an EventSource hides comments, and a quiet stream is no sign of a dead one there.
  watchStream(es) {
    clearTimeout(this.watchdog);
    if (!this.watched(es)) return;
    const limit = SILENT_HEARTBEATS * this.heartbeatMs + this.socket._opts.transportTimeout;
    const check = () => {
      if (this.es !== es || this.stopped) return;
      const quiet = Date.now() - es.seen;
      if (quiet >= limit) this.lostStream(es, 'the stream went silent');
      else this.watchdog = setTimeout(check, limit - quiet);
    };
    check();
  }

  watched(es) {
    return es instanceof SseReader && this.heartbeatMs > 0;
  }

  closeStream() {
    clearTimeout(this.watchdog);
    const es = this.es;
    this.es = null;
    if (!es) return;
    if (this.proven(es)) this.failures = 0;
    this.opening = null;
    es.onmessage = es.onerror = null;
    es.close();
  }

  resumeStream(delayMs) {
    this.closeStream();
    clearTimeout(this.resumeTimer);
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = null;
      if (this.stopped) return;
      const url = this.endpoint('sse', { s: this.token, last: String(this.lastId) });
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
      const began = Date.now();
      const limit = setTimeout(() => abort.abort(), this.pollTimeoutMs + BRIDGE_TICK_MS + this.socket._opts.transportTimeout);
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
        await this.sleep(250 * 2 ** this.failures);
        continue;
      }
      if (body.records.length === 0 && this.token !== null && Date.now() - began < this.pollTimeoutMs / 2) {
        // Empty, and long before poll_timeout: not held. No failure (the bridge answered, and
        // what comes for the session still comes), but the next poll waits, longer each time.
        this.hastyPolls += 1;
        await this.sleep(Math.min(HASTY_POLL_DELAY_MS * 2 ** (this.hastyPolls - 1), HASTY_POLL_MAX_DELAY_MS, this.pollTimeoutMs));
        continue;
      }
      this.hastyPolls = 0;
      this.failures = 0;
      let id = body.firstId;
      for (const r of body.records) {
        if (this.stopped) return;
        // (What the application's handlers throw is reported, and the loop goes on: an
        // exception out of here ended the polling for good, with the session still open.)
        try {
          if (r.kind === 'c') {
            this.onControl(JSON.parse(utf8Decoder.decode(r.bytes)));
          } else {
            this.onMessage(id, r.kind === 't' ? { kind: 'text', text: utf8Decoder.decode(r.bytes) } : { kind: 'binary', bytes: r.bytes });
          }
        } catch (err) {
          this.socket._reportError(err);
        }
        if (r.kind !== 'c') id += 1;
      }
      if (this.token === null) {
        if (!this.failed('no welcome in the first poll')) return;
        continue;
      }
      url = this.endpoint('poll', { s: this.token, last: String(this.lastId) });
    }
  }

  // A pause between tries (of a poll, or of a POST: wsbridge-upstream.js) that stop() ends at
  // once: the timer of a backoff kept a closed page, or Node process, busy for seconds.
  sleep(ms) {
    const { signal } = this.life;
    return new Promise((resolve) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
    });
  }

  // ----- upstream (wsbridge-upstream.js): what the socket asks of its carrier, as of a WebSocket

  send(data) {
    this.upstream.send(data);
  }

  get bufferedAmount() {
    return this.upstream.bufferedAmount;
  }

  closeSession(code, reason) {
    this.upstream.closeSession(code, reason);
  }

  end(code, reason, wasClean) {
    this.stop();
    if (this.open()) this.socket._finish(code, reason, wasClean);
    else this.socket._attemptFailed(this.attempt, { code, reason });
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    // Every timer and request of the session, at once: nothing of it is sent or waited for after
    // close() but the close record (Upstream.closeSession), and nothing keeps a page busy.
    clearTimeout(this.streamTimer);
    clearTimeout(this.resumeTimer);
    this.closeStream();
    this.poll?.abort();
    this.life.abort();
    this.upstream.stop();
  }
}
