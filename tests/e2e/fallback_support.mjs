// What the HTTP fallback tests (#16, label fallback) share: a raw SSE reader, the poll and POST
// record format (docs/FALLBACK.md), written here from the spec rather than taken from
// web/wsbridge.js, so the server is checked against the document and not against its own client.
import http from 'node:http';
import { chromium } from 'playwright-core';
import { SERVICE } from './mqtt_passthrough_support.mjs';

// The TOML of an MQTT upstream at the tests' broker and a JSON route on it (ACLs: sensors/#).
export function mqttRouteToml(brokerPort, path = '/mqtt') {
  return `[upstreams.local]
uri = "tcp://127.0.0.1:${brokerPort}"
username = "${SERVICE.user}"
password = "${SERVICE.password}"
reconnect_min = "200ms"
reconnect_max = "1s"
[[routes]]
path = "${path}"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["sensors/#"]
allow_publish = ["sensors/#"]
`;
}

// Debian's headless Chromium, as every browser test launches it.
export function launchChromium() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export function request(port, method, target, { body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent: false },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
          body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
    req.on('error', reject);
    req.end(body);
  });
}

export const json = (res) => JSON.parse(res.body.toString('utf8'));

// One SSE response, parsed as an EventSource would (events: {id, event, data}).
export class SseStream {
  constructor(port, target, headers = {}) {
    this.events = [];
    this.waiters = [];
    this.ended = false;
    this.opened = new Promise((resolve, reject) => {
      this.req = http.request({ host: '127.0.0.1', port, path: target, headers, agent: false },
        (res) => {
          this.res = res;  // (a test may pause() it: a client that stops reading)
          this.status = res.statusCode;
          this.headers = res.headers;
          let buffer = '';
          let event = { data: [] };
          res.setEncoding('utf8');
          res.on('data', (chunk) => {
            buffer += chunk;
            let nl;
            while ((nl = buffer.indexOf('\n')) >= 0) {
              const line = buffer.slice(0, nl);
              buffer = buffer.slice(nl + 1);
              if (line === '') {
                if (event.data.length > 0) {
                  this.events.push({ id: event.id, event: event.event ?? 'message',
                    data: event.data.join('\n') });
                }
                event = { data: [] };
              } else if (line.startsWith(':')) {
                this.comments = (this.comments ?? 0) + 1;
              } else {
                const colon = line.indexOf(':');
                const field = line.slice(0, colon);
                let value = line.slice(colon + 1);
                if (value.startsWith(' ')) value = value.slice(1);
                if (field === 'data') event.data.push(value);
                else if (field === 'id') event.id = value;
                else if (field === 'event') event.event = value;
              }
            }
            this.wake();
          });
          res.on('end', () => { this.ended = true; this.wake(); });
          res.on('error', () => { this.ended = true; this.wake(); });
          resolve(this);
        });
      this.req.on('error', (e) => { this.ended = true; this.wake(); reject(e); });
      this.req.end();
    });
  }
  wake() { for (const w of this.waiters.splice(0)) w(); }
  // Waits until `check(events)` holds (or the stream ended, or `ms` passed).
  async until(check, ms = 5000, what = 'events') {
    const deadline = Date.now() + ms;
    while (!check(this.events)) {
      if (this.ended) throw new Error(`stream ended before ${what}: ${JSON.stringify(this.events)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(this.events)}`);
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, Math.min(left, 100)); });
    }
    return this.events;
  }
  async endedWithin(ms = 5000) {
    const deadline = Date.now() + ms;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.ended;
  }
  close() { this.req.destroy(); }
  // The messages (not controls), decoded: {id, binary, payload: Buffer}.
  get messages() {
    return this.events.filter((e) => e.event !== 'control').map(decodeEvent);
  }
  get controls() {
    return this.events.filter((e) => e.event === 'control').map((e) => JSON.parse(e.data));
  }
}

export function decodeEvent(e) {
  if (e.event === 'frame') {
    return { id: Number(e.id), binary: e.data[0] === 'b', payload: Buffer.from(e.data.slice(1), 'base64') };
  }
  return { id: Number(e.id), binary: false, payload: Buffer.from(e.data, 'utf8') };
}

// A POST or poll body: "<first>\n" then t/b/c records.
export function encodeBody(first, records) {
  const parts = [Buffer.from(`${first}\n`)];
  for (const { kind = 't', payload } of records) {
    const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
    parts.push(Buffer.from(`${kind}${bytes.length}:`), bytes);
  }
  return Buffer.concat(parts);
}

export function decodeBody(buffer) {
  const nl = buffer.indexOf(0x0a);
  if (nl < 0) throw new Error(`no first line in ${buffer.toString()}`);
  const first = Number(buffer.subarray(0, nl).toString());
  const records = [];
  let i = nl + 1;
  while (i < buffer.length) {
    const kind = String.fromCharCode(buffer[i]);
    const colon = buffer.indexOf(0x3a, i);
    const length = Number(buffer.subarray(i + 1, colon).toString());
    const payload = buffer.subarray(colon + 1, colon + 1 + length);
    if (payload.length !== length) throw new Error('a record is cut short');
    records.push({ kind, payload });
    i = colon + 1 + length;
  }
  return { first, records };
}
