// wsbridge-upstream.js: the upstream of a fallback session (docs/FALLBACK.md, "Upstream: POST"):
// what the application sends, numbered from 1 and batched into POSTs, one in flight at a time,
// each sent again as it was until the bridge says what it applied (it applies a record once).
// Upstream belongs to a FallbackSession (wsbridge-fallback.js), and ends it when POSTs fail.

import { encodePostBody } from './wsbridge-wire.js';

const POST_RETRIES = 3; // a failed POST: tries again before the session is given up
const MAX_POST_MESSAGES = 256;
// A POST's body at most, unless the welcome names the bridge's own max_post_bytes (older bridges:
// 256 KiB fits their 1 MiB default).
const DEFAULT_MAX_POST_BYTES = 256 * 1024;
// What a message may take in a POST body: UTF-8 (up to 3 bytes per UTF-16 unit) and its record's
// framing ("t<length>:"). An upper bound: a batch within it is within the bridge's limit.
const RECORD_FRAMING = 24;
// What a browser sends with `keepalive` (a request that may outlive its page): 64 KiB in flight
// at most, over all of them (the Fetch standard); a larger body is refused at once.
const KEEPALIVE_BYTES = 60 * 1024;
function postBytes(m) {
  return (typeof m.data === 'string' ? 3 * m.data.length : m.size) + RECORD_FRAMING;
}

export class Upstream {
  constructor(session) {
    this.session = session;
    this.nextSeq = 1;
    this.queue = []; // {seq, data, size}
    this.inflight = null; // {messages, body}
    this.frozen = null; // while moving to a WebSocket: called once no POST is in flight (freeze)
    this.bufferedAmount = 0;
    this.maxPostBytes = DEFAULT_MAX_POST_BYTES;
    this.postAbort = null; // the AbortController of the POST in flight (stop() aborts it)
  }

  send(data) {
    const size = typeof data === 'string' ? data.length : (data.byteLength ?? data.size ?? 0);
    this.queue.push({ seq: this.nextSeq++, data, size });
    this.bufferedAmount += size;
    if (!this.inflight) this.post();
  }

  async post() {
    const session = this.session;
    if (this.inflight || this.queue.length === 0 || session.stopped || this.frozen) return;
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
    while (!session.stopped) {
      let status = -1;
      let answer = null;
      const abort = new AbortController();
      this.postAbort = abort;
      let limit = null;
      let timedOut = false;
      try {
        // Blobs become bytes here, in order; the body is then sent as it is on every retry.
        if (!flight.body) {
          const datas = await Promise.all(messages.map((m) => (typeof Blob === 'function' && m.data instanceof Blob ? m.data.arrayBuffer() : m.data)));
          flight.body = encodePostBody(messages[0].seq, datas);
          if (session.stopped) return; // (closed while the Blobs were read: nothing goes out)
        }
        const url = session.endpoint('send', { s: session.token });
        // A bridge (or a proxy) that took the POST and never answers held it, and everything
        // sent after it, until the application closed the socket: unanswered in time, it is a
        // failed POST (the abort also ends a body that stops coming halfway).
        limit = setTimeout(() => { timedOut = true; abort.abort(); }, this.postTimeoutMs());
        const res = await session.socket._fetch(url, {
          method: 'POST', body: flight.body, credentials: session.credentials, cache: 'no-store',
          headers: { 'Content-Type': 'text/plain' }, signal: abort.signal,
        });
        status = res.status;
        answer = await res.json().catch(() => null);
      } catch {
        // a network failure: retried below
      } finally {
        clearTimeout(limit);
        if (this.postAbort === abort) this.postAbort = null;
      }
      if (session.stopped) return;
      const first = messages[0].seq;
      const last = messages[messages.length - 1].seq;
      // Applied up to `next` (200), or expects `expected` (409): what is before is done. Only an
      // answer about this body counts: a 200 without one (a captive portal, a proxy's page) or
      // naming what was never sent is no delivery, and is tried again.
      const next = Number(status === 200 ? answer?.next : answer?.expected);
      // An answer that applies nothing of this body (it names its first message) is no progress:
      // sent again at once, it made a flood of POSTs; it counts as a failed try instead.
      const progress = next !== first;
      if (status === 200 && progress && Number.isSafeInteger(next) && next >= first && next <= last + 1) {
        const rest = messages.filter((m) => m.seq >= next);
        for (const m of messages) if (!rest.includes(m)) this.bufferedAmount -= m.size;
        this.queue.unshift(...rest);
        break;
      }
      if (status === 409 && progress) {
        if (!Number.isSafeInteger(next) || next < first || next > last + 1) {
          session.end(1006, 'the upstream lost its place', false);
          return;
        }
        const rest = messages.filter((m) => m.seq >= next);
        for (const m of messages) if (!rest.includes(m)) this.bufferedAmount -= m.size;
        this.queue.unshift(...rest);
        break;
      }
      if (status === 404) return session.end(1006, 'the fallback session is gone', false);
      // The server closed the session before this POST arrived: its close record, as the
      // downstream would have brought it (e.g. 1012, a restart, with its retry hint).
      if (status === 410) return session.end(Number(answer?.code) || 1006, String(answer?.reason ?? ''), true);
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
      if (status === 413) return session.end(1009, 'message too big', false);
      if (status === 400) return session.end(1002, 'the bridge refused a POST as malformed', false);
      // Network failure, no answer in time, or a proxy's 5xx: the same body again (the bridge
      // skips what it applied, so an answer that was only late or lost repeats nothing).
      tries += 1;
      if (tries > POST_RETRIES) return session.end(1006, `POST failed (${timedOut ? 'no answer' : status})`, false);
      await session.sleep(250 * 2 ** tries); // (which stop() ends: the loop ends with it)
    }
    this.inflight = null;
    if (this.frozen) this.frozen();
    else this.post();
  }

  // How long a POST may go unanswered: options.postTimeout, or as long as a poll may take (the
  // welcome's poll_timeout and transportTimeout: 30 s with the bridge's defaults). The bridge
  // answers a POST at once unless the route paused the session's reading (flow control,
  // docs/FALLBACK.md), and a POST given up on then costs a retry, not a message.
  postTimeoutMs() {
    const opts = this.session.socket._opts;
    const given = Number(opts.postTimeout);
    return given > 0 ? given : this.session.pollTimeoutMs + opts.transportTimeout;
  }

  // Moving to a WebSocket: no new POST (what the application sends waits in the queue); `idle` is
  // called once none is in flight, or when the session stops. thaw() undoes it.
  freeze(idle) {
    this.frozen = idle;
    if (!this.inflight || this.session.stopped) idle();
  }

  thaw() {
    this.frozen = null;
    this.post();
  }

  // The application closes: the server is told (a close record after whatever is still unsent,
  // with sequence numbers it skips if it had them), so the session ends now rather than when the
  // server stops hearing from it, and what the application sent before close() still goes out,
  // as a WebSocket's close() sends what it buffered first. Fire and forget: a body a browser takes
  // with `keepalive` (at most 64 KiB in flight) may outlive the page; a larger one (a browser
  // refuses it outright, and the close was lost) goes as a plain request, in POSTs of at most the
  // bridge's max_post_bytes one after the other (one over it got 413, the close with it). Blobs
  // are read first: the close waits for them rather than skip their sequence numbers, which the
  // bridge would refuse as a gap.
  closeSession(code, reason) {
    const session = this.session;
    if (session.token === null || session.stopped) return;
    const pending = [...(this.inflight?.messages ?? []), ...this.queue];
    const closeCode = code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000;
    const control = { type: 'close', code: closeCode, reason: String(reason).slice(0, 123) };
    const url = session.endpoint('send', { s: session.token });
    const fetchFn = session.socket._fetch;
    const { credentials } = session;
    const timeoutMs = session.socket._opts.transportTimeout;
    const maxPostBytes = this.maxPostBytes;
    let seq = pending.length > 0 ? pending[0].seq : this.nextSeq;
    const postFrom = async (datas) => {
      let at = 0;
      do {
        let bytes = 16;
        let n = 0;
        while (at + n < datas.length && n < MAX_POST_MESSAGES &&
               (n === 0 || bytes + postBytes(pending[at + n]) <= maxPostBytes)) {
          bytes += postBytes(pending[at + n]);
          n += 1;
        }
        const last = at + n === datas.length;
        const body = encodePostBody(seq, datas.slice(at, at + n), last ? control : null);
        // (Bounded: against a bridge that never answers, each reconnection left one more open.)
        const signal = typeof AbortSignal.timeout === 'function' ? AbortSignal.timeout(timeoutMs) : undefined;
        const answer = await fetchFn(url, {
          method: 'POST', body, credentials, cache: 'no-store', keepalive: body.length <= KEEPALIVE_BYTES,
          headers: { 'Content-Type': 'text/plain' }, signal,
        });
        if (last) return;
        if (!answer.ok) return; // (the bridge says why on its stream, which is closed: nothing to do)
        seq += n;
        at += n;
      } while (at <= datas.length);
    };
    const datas = pending.map((m) => m.data);
    const blobs = typeof Blob === 'function' && datas.some((d) => d instanceof Blob);
    const sending = blobs ? Promise.all(datas.map((d) => (d instanceof Blob ? d.arrayBuffer() : d))).then(postFrom)
      : postFrom(datas);
    sending.catch(() => {});
  }

  // The session stopped: the POST in flight is abandoned (its messages are the socket's no more:
  // the session is over), and a move waiting for it goes on.
  stop() {
    this.postAbort?.abort();
    this.frozen?.();
  }
}
