// wsbridge-wire.js: what wsbridge.js' other modules share about bytes and topics: MQTT topic
// rules, base64, and the fallback wire formats of docs/FALLBACK.md (long-poll bodies, upstream
// POST bodies, SSE events). No state; the exported parsers are re-exported by wsbridge.js.

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

export function filterProblem(filter) {
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

export function topicProblem(topic) {
  if (typeof topic !== 'string' || topic === '') return 'the topic must be a non-empty string';
  if (/[+#]/.test(topic)) return 'a publish topic cannot contain wildcards';
  return null;
}

// ---------------------------------------------------------------------------------------------
// Base64 (atob/btoa exist in browsers and in Node 16+)

export function bytesToBase64(bytes) {
  let binary = '';
  // Chunked: String.fromCharCode(...bytes) overflows the call stack on large payloads.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function base64ToBytes(b64) {
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function asBytes(payload) {
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
export const utf8Decoder = new TextDecoder('utf-8');
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

