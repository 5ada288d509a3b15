// wsbridge-fallback.js: a session of wsbridge.js carried over HTTP (docs/FALLBACK.md) when the
// WebSocket does not work: its downstream (an SSE stream, or long-polls) and its upstream POSTs.
// FallbackSession is WsbridgeSocket's carrier (wsbridge-socket.js): it reports to its socket.

import { decodeSseEvent, encodePostBody, parsePollBody, utf8Decoder } from './wsbridge-wire.js';

const STREAM_RETRIES = 3; // a lost stream, a failed poll or POST: tries before the session is given up
const MAX_POST_MESSAGES = 256;
const STREAM_STABLE_MS = 5000; // a stream up this long, or bringing a message, was a success
// A POST's body at most, unless the welcome names the bridge's own max_post_bytes (older bridges:
// 256 KiB fits their 1 MiB default).
const DEFAULT_MAX_POST_BYTES = 256 * 1024;
// What a message may take in a POST body: UTF-8 (up to 3 bytes per UTF-16 unit) and its record's
// framing ("t<length>:"). An upper bound: a batch within it is within the bridge's limit.
const RECORD_FRAMING = 24;
function postBytes(m) {
  return (typeof m.data === 'string' ? 3 * m.data.length : m.size) + RECORD_FRAMING;
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

function sleepMs(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
    this.maxPostBytes = DEFAULT_MAX_POST_BYTES;
    this.postAbort = null; // the AbortController of the POST in flight (stop() aborts it)
    if (kind === 'sse') this.openStream(fallbackUrl(socket._wsUrl, 'sse'));
    else this.pollLoop(fallbackUrl(socket._wsUrl, 'poll'));
  }

  open() {
    return this.socket._carrier === this;
  }

  // ----- downstream

  onWelcome(welcome) {
    // A welcome alone is no success: a stream that ends after each one was resumed at the first
    // delay for ever. Its messages are (onMessage), or its lasting a while.
    clearTimeout(this.streamTimer);
    clearTimeout(this.stableTimer);
    this.stableTimer = setTimeout(() => { this.failures = 0; }, STREAM_STABLE_MS);
    if (this.token === null) {
      this.token = welcome.session;
      this.pollTimeoutMs = (Number(welcome.poll_timeout) || 25) * 1000;
      const limit = Number(welcome.max_post_bytes);
      if (Number.isSafeInteger(limit) && limit >= 1024) this.maxPostBytes = limit;
      this.socket.session = welcome;
      this.socket._opened(this.attempt, this);
    }
  }

  onMessage(id, message) {
    if (!this.open()) return;
    if (id <= this.lastId) return; // a resumed stream's repeat
    this.lastId = id;
    this.failures = 0;
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
        // (What the application's handlers throw is reported, and the loop goes on: an
        // exception out of here ended the polling for good, with the session still open.)
        try {
          if (r.kind === 'c') {
            this.onControl(JSON.parse(utf8Decoder.decode(r.bytes)));
          } else {
            this.onMessage(id, r.kind === 't' ? { kind: 'text', text: utf8Decoder.decode(r.bytes) } : { kind: 'binary', bytes: r.bytes });
          }
        } catch (err) {
          this.socket.onerror?.({ type: 'error', error: err });
        }
        if (r.kind !== 'c') id += 1;
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
    let bytes = 16; // (the first line)
    let n = 0;
    while (n < this.queue.length && n < MAX_POST_MESSAGES &&
           (n === 0 || bytes + postBytes(this.queue[n]) <= this.maxPostBytes)) {
      bytes += postBytes(this.queue[n]);
      n += 1;
    }
    let messages = this.queue.splice(0, n);
    const flight = { messages, body: null };
    this.inflight = flight;
    let tries = 0;
    while (!this.stopped) {
      let status = -1;
      let answer = null;
      const abort = new AbortController();
      this.postAbort = abort;
      try {
        // Blobs become bytes here, in order; the body is then sent as it is on every retry.
        if (!flight.body) {
          const datas = await Promise.all(messages.map((m) => (typeof Blob === 'function' && m.data instanceof Blob ? m.data.arrayBuffer() : m.data)));
          flight.body = encodePostBody(messages[0].seq, datas);
        }
        const url = fallbackUrl(this.socket._wsUrl, 'send', { s: this.token });
        const res = await this.socket._fetch(url, {
          method: 'POST', body: flight.body, credentials: this.credentials, cache: 'no-store',
          headers: { 'Content-Type': 'text/plain' }, signal: abort.signal,
        });
        status = res.status;
        answer = await res.json().catch(() => null);
      } catch {
        // a network failure: retried below
      } finally {
        if (this.postAbort === abort) this.postAbort = null;
      }
      if (this.stopped) return;
      const first = messages[0].seq;
      const last = messages[messages.length - 1].seq;
      // Applied up to `next` (200), or expects `expected` (409): what is before is done. Only an
      // answer about this body counts: a 200 without one (a captive portal, a proxy's page) or
      // naming what was never sent is no delivery, and is tried again.
      const next = Number(status === 200 ? answer?.next : answer?.expected);
      if (status === 200 && Number.isSafeInteger(next) && next >= first && next <= last + 1) {
        const rest = messages.filter((m) => m.seq >= next);
        for (const m of messages) if (!rest.includes(m)) this.bufferedAmount -= m.size;
        this.queue.unshift(...rest);
        break;
      }
      if (status === 409) {
        if (!Number.isSafeInteger(next) || next < first || next > last + 1) {
          this.end(1006, 'the upstream lost its place', false);
          return;
        }
        const rest = messages.filter((m) => m.seq >= next);
        for (const m of messages) if (!rest.includes(m)) this.bufferedAmount -= m.size;
        this.queue.unshift(...rest);
        break;
      }
      if (status === 404) return this.end(1006, 'the fallback session is gone', false);
      // The server closed the session before this POST arrived: its close record, as the
      // downstream would have brought it (e.g. 1012, a restart, with its retry hint).
      if (status === 410) return this.end(Number(answer?.code) || 1006, String(answer?.reason ?? ''), true);
      if (status === 413 && messages.length > 1) {
        // Over the bridge's limit together (one it did not name): half of them, then the rest.
        const half = Math.ceil(messages.length / 2);
        this.queue.unshift(...messages.slice(half));
        messages = messages.slice(0, half);
        flight.messages = messages;
        flight.body = null;
        this.maxPostBytes = Math.max(1024, Math.floor(this.maxPostBytes / 2));
        continue;
      }
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
    // (Bounded: against a bridge that never answers, each reconnection left one more open.)
    const signal = typeof AbortSignal.timeout === 'function' ? AbortSignal.timeout(this.socket._opts.transportTimeout) : undefined;
    this.socket._fetch(url, {
      method: 'POST', body, credentials: this.credentials, cache: 'no-store', keepalive: true,
      headers: { 'Content-Type': 'text/plain' }, signal,
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
    clearTimeout(this.stableTimer);
    this.closeStream();
    this.poll?.abort();
    this.postAbort?.abort(); // (its messages are the socket's no more: the session is over)
    this.frozen?.();
  }
}
