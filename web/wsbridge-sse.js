// wsbridge-sse.js: the SSE stream of a fallback session (wsbridge-fallback.js) read over fetch,
// not with an EventSource: an EventSource hides comments, and the bridge's heartbeat is one
// (`: hb`, docs/FALLBACK.md), so only a reader of our own can tell a quiet stream from a dead one.
// SseReader has the part of the EventSource interface the session uses, plus `seen`.

// What one event (its lines so far) may hold: a stream that never ends a line or an event (a proxy
// or portal sending something else) fails instead of growing the page's memory without end.
const MAX_EVENT_CHARS = 64 * 1024 * 1024;

/**
 * The event stream format (WHATWG HTML, "Parsing an event stream"), fed decoded text in pieces
 * cut anywhere: `onEvent(type, data, lastEventId)` per event. Comments and `retry` are skipped.
 * feed() throws once an event's text passes `maxChars`.
 */
export class SseParser {
  constructor(onEvent, maxChars = MAX_EVENT_CHARS) {
    this.onEvent = onEvent;
    this.maxChars = maxChars;
    this.partial = ''; // the line begun, not yet ended
    this.afterCR = false; // the last piece ended in CR: an LF first in the next ends nothing
    this.type = '';
    this.data = '';
    this.hasData = false;
    this.lastEventId = '';
  }

  feed(text) {
    if (text === '') return;
    let at = this.afterCR && text[0] === '\n' ? 1 : 0;
    this.afterCR = false;
    const re = /[\r\n]/g;
    for (;;) {
      re.lastIndex = at;
      const end = re.exec(text);
      if (end === null) {
        this.partial += text.slice(at);
        this.bound();
        return;
      }
      const line = this.partial + text.slice(at, end.index);
      this.partial = '';
      at = end.index + 1;
      if (text[end.index] === '\r') {
        if (at === text.length) this.afterCR = true;
        else if (text[at] === '\n') at += 1;
      }
      this.line(line);
      this.bound();
    }
  }

  bound() {
    if (this.partial.length + this.data.length > this.maxChars) {
      throw new Error(`an SSE event over ${this.maxChars} characters`);
    }
  }

  line(line) {
    if (line === '') {
      const { type, data, hasData } = this;
      this.type = '';
      this.data = '';
      this.hasData = false;
      if (hasData) this.onEvent(type || 'message', data, this.lastEventId);
      return;
    }
    if (line[0] === ':') return; // a comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') {
      this.data = this.hasData ? `${this.data}\n${value}` : value;
      this.hasData = true;
    } else if (field === 'event') {
      this.type = value;
    } else if (field === 'id' && !value.includes('\0')) {
      this.lastEventId = value;
    }
  }
}

/**
 * One SSE response read with `fetchFn`, EventSource-like: `onmessage`, `addEventListener(type)`
 * (one listener per type), `onerror` once when the stream fails or ends, `close()`. Unlike an
 * EventSource it never reconnects by itself (the session resumes it), `seen` is when its last
 * bytes came (Date.now()), comments included, and `reads` how many pieces of them came.
 */
export class SseReader {
  constructor(url, fetchFn, credentials) {
    this.onmessage = this.onerror = null;
    this.listeners = new Map();
    this.seen = Date.now();
    this.reads = 0; // pieces of the body read so far (a session tells what came after its welcome)
    this.abort = new AbortController();
    this.closed = false;
    this.read(url, fetchFn, credentials);
  }

  addEventListener(type, listener) {
    this.listeners.set(type, listener);
  }

  close() {
    this.closed = true;
    this.abort.abort();
  }

  async read(url, fetchFn, credentials) {
    try {
      await null; // (what happens is told once the constructor has returned and onerror is set)
      const res = await fetchFn(url, {
        credentials, cache: 'no-store', headers: { Accept: 'text/event-stream' }, signal: this.abort.signal,
      });
      // As an EventSource: anything but a 200 event stream fails it.
      if (res.status !== 200 || !/^text\/event-stream\b/i.test(res.headers.get('Content-Type') || '')) {
        res.body?.cancel().catch(() => {});
        throw new Error(`SSE answered ${res.status}`);
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser((type, data, lastEventId) => this.dispatch(type, { type, data, lastEventId }));
      while (!this.closed) {
        const { done, value } = await reader.read();
        if (done || this.closed) break;
        this.seen = Date.now();
        this.reads += 1;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch {
      // failed: below, as an end
    }
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.onerror?.({ type: 'error' });
  }

  dispatch(type, event) {
    if (this.closed) return;
    const listener = type === 'message' ? this.onmessage : this.listeners.get(type);
    listener?.(event);
  }
}
