// The Node.js bridge users run today, written as a competent user would: `ws` for the WebSockets
// (permessage-deflate off unless --deflate on, bufferutil installed), `mqtt` for the broker, one shared MQTT client
// with reference-counted subscriptions, each message serialized once and the same Buffer sent to
// every subscriber, a bound on each connection's buffered output. It speaks wsbridge's JSON
// protocol v1 (docs/PROTOCOL.md: subscribe, unsubscribe, publish, ping; status, message, ack,
// error, pong) on /mqtt, and the rpc frames ({"type":"request"} answered by {"type":"response"})
// on /rpc, forwarded to an HTTP backend over a keep-alive agent.
//
//   node index.mjs --port 8082 --mqtt mqtt://127.0.0.1:1883 [--backend http://127.0.0.1:8090]
//                  [--deflate on] [--tls-cert server.crt --tls-key server.key]
//
// With --tls-cert and --tls-key the same code serves wss:// (https.createServer with that
// certificate and key, Node's TLS defaults: what a user of `ws` behind https writes).
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { WebSocketServer } from 'ws';
import mqtt from 'mqtt';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const port = Number(args.port ?? 8082);
const brokerUrl = args.mqtt ?? 'mqtt://127.0.0.1:1883';
const backend = args.backend ? new URL(args.backend) : null;
// permessage-deflate as a competent user turns it on (the compression phase of bench/run): zlib
// level 1 (the fastest), nothing compressed under 128 bytes (ws's default of 1024 would leave a
// typical JSON message uncompressed), at most 10 zlib jobs at once (ws's default), and ws's
// defaults for the rest: context takeover both ways, 15-bit windows, zlib's memLevel 8.
const perMessageDeflate =
  args.deflate === 'on'
    ? { zlibDeflateOptions: { level: 1 }, threshold: 128, concurrencyLimit: 10 }
    : false;
const MAX_BUFFERED = 16 * 1024 * 1024; // like wsbridge's max_queued_bytes: close 1013 beyond it
const MAX_SUBSCRIPTIONS = 100;

// ---- the shared MQTT client ------------------------------------------------------------------
const client = mqtt.connect(brokerUrl, {
  clientId: `node-bridge-${process.pid}`,
  clean: true,
  reconnectPeriod: 500,
  keepalive: 30,
});
const filters = new Map(); // filter -> { sockets: Set<ws>, qos, acked, waiting: [ [ws, id] ] }

function send(ws, data) {
  if (ws.readyState !== 1) return;
  if (ws.bufferedAmount > MAX_BUFFERED) {
    ws.close(1013, 'slow consumer');
    return;
  }
  ws.send(data, { binary: false });
}
const reply = (ws, obj) => send(ws, JSON.stringify(obj));
const status = () => JSON.stringify({ type: 'status', upstream: client.connected ? 'up' : 'down' });

function topicMatches(filter, topic) {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return i > 0 || !topic.startsWith('$');
    if (i >= t.length) return false;
    if (f[i] === '+') {
      if (i === 0 && t[0].startsWith('$')) return false;
      continue;
    }
    if (f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

function validFilter(filter) {
  if (typeof filter !== 'string' || filter.length === 0 || filter.length > 65535) return false;
  if (filter.includes('\0')) return false;
  const levels = filter.split('/');
  return levels.every((l, i) => (l.includes('#') ? l === '#' && i === levels.length - 1 : !l.includes('+') || l === '+'));
}

function decodePayload(buf) {
  const text = buf.toString('utf8');
  if (text.length > 0) {
    try {
      return { payload: JSON.parse(text) };
    } catch {
      // not JSON
    }
  }
  if (Buffer.from(text, 'utf8').equals(buf)) return { payload: text };
  return { payload_b64: buf.toString('base64') };
}

client.on('message', (topic, payloadBuf, packet) => {
  let targets = null;
  let only = null;
  for (const [filter, entry] of filters) {
    if (entry.sockets.size === 0 || !topicMatches(filter, topic)) continue;
    if (only === null) {
      only = entry.sockets;
    } else {
      // Overlapping filters: each connection gets the message once.
      if (targets === null) targets = new Set(only);
      for (const ws of entry.sockets) targets.add(ws);
    }
  }
  if (only === null) return;
  const frame = Buffer.from(
    JSON.stringify({ type: 'message', topic, ...decodePayload(payloadBuf), qos: packet.qos, retain: packet.retain }),
  );
  for (const ws of targets ?? only) send(ws, frame);
});

client.on('connect', () => {
  const text = status();
  for (const ws of wss.clients) send(ws, text);
  // Resubscribe after a reconnect (clean session).
  for (const [filter, entry] of filters) {
    if (entry.sockets.size > 0 && entry.acked) client.subscribe(filter, { qos: entry.qos });
  }
});
client.on('close', () => {
  const text = status();
  for (const ws of wss.clients) send(ws, text);
});
client.on('error', (err) => console.error('mqtt:', err.message));

function subscribe(ws, state, msg) {
  const filter = msg.topic;
  const qos = msg.qos ?? 0;
  if (!validFilter(filter)) return error(ws, msg.id, 'bad_request', 'invalid topic filter');
  if (![0, 1, 2].includes(qos)) return error(ws, msg.id, 'bad_request', "'qos' must be 0, 1 or 2");
  if (!state.filters.has(filter) && state.filters.size >= MAX_SUBSCRIPTIONS) {
    return error(ws, msg.id, 'forbidden', 'too many subscriptions');
  }
  let entry = filters.get(filter);
  if (!entry) {
    entry = { sockets: new Set(), qos, acked: false, waiting: [] };
    filters.set(filter, entry);
    client.subscribe(filter, { qos }, (err, granted) => {
      entry.acked = true;
      const refused = err || !granted || granted.some((g) => g.qos === 128);
      for (const [w, id] of entry.waiting) {
        if (refused) error(w, id, 'forbidden', 'the broker refused the subscription');
        else if (id !== undefined) reply(w, { type: 'ack', id });
      }
      entry.waiting = [];
    });
  }
  entry.sockets.add(ws);
  state.filters.add(filter);
  if (entry.acked) {
    if (msg.id !== undefined) reply(ws, { type: 'ack', id: msg.id });
  } else {
    entry.waiting.push([ws, msg.id]);
  }
}

function unsubscribe(ws, state, filter) {
  const entry = filters.get(filter);
  state.filters.delete(filter);
  if (!entry) return;
  entry.sockets.delete(ws);
  if (entry.sockets.size === 0) {
    filters.delete(filter);
    client.unsubscribe(filter);
  }
}

function publish(ws, msg) {
  if (typeof msg.topic !== 'string' || msg.topic.length === 0 || /[+#\0]/.test(msg.topic)) {
    return error(ws, msg.id, 'bad_request', 'invalid topic');
  }
  const qos = msg.qos ?? 0;
  let payload = '';
  if (msg.payload_b64 !== undefined) payload = Buffer.from(msg.payload_b64, 'base64');
  else if (typeof msg.payload === 'string') payload = msg.payload;
  else if (msg.payload !== undefined) payload = JSON.stringify(msg.payload);
  if (!client.connected && qos === 0) return error(ws, msg.id, 'upstream_unavailable', 'broker unreachable');
  client.publish(msg.topic, payload, { qos, retain: msg.retain === true }, (err) => {
    if (qos > 0 && msg.id !== undefined) {
      if (err) error(ws, msg.id, 'upstream_unavailable', err.message);
      else reply(ws, { type: 'ack', id: msg.id });
    }
  });
  if (qos === 0 && msg.id !== undefined) reply(ws, { type: 'ack', id: msg.id });
}

function error(ws, id, code, message) {
  const frame = { type: 'error', code, message };
  if (id !== undefined) frame.id = id;
  reply(ws, frame);
}

// ---- rpc: {"type":"request"} -> HTTP backend -> {"type":"response"} ----------------------------
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function request(ws, msg) {
  if (!backend) return error(ws, msg.id, 'upstream_unavailable', 'no backend configured');
  const body = msg.body === undefined || msg.body === null ? null : typeof msg.body === 'string' ? msg.body : JSON.stringify(msg.body);
  const req = http.request(
    {
      agent,
      host: backend.hostname,
      port: backend.port,
      method: msg.method ?? 'GET',
      path: msg.path ?? '/',
      headers: { ...(msg.headers ?? {}), ...(body !== null ? { 'content-length': Buffer.byteLength(body) } : {}) },
    },
    (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed = text;
        if ((res.headers['content-type'] ?? '').includes('json')) {
          try {
            parsed = JSON.parse(text);
          } catch {
            // keep the text
          }
        }
        reply(ws, { type: 'response', id: msg.id, status: res.statusCode, headers: res.headers, body: parsed });
      });
    },
  );
  req.on('error', (err) => error(ws, msg.id, 'upstream_unavailable', err.message));
  if (body !== null) req.write(body);
  req.end();
}

// ---- the WebSocket server --------------------------------------------------------------------
const tls = args['tls-cert'] && args['tls-key'];
let wss;
if (tls) {
  const server = https.createServer({ cert: fs.readFileSync(args['tls-cert']), key: fs.readFileSync(args['tls-key']) });
  wss = new WebSocketServer({ server, perMessageDeflate, maxPayload: 1 << 20 });
  server.listen(port, '127.0.0.1');
} else {
  wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate, maxPayload: 1 << 20 });
}

wss.on('connection', (ws, req) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/mqtt' && path !== '/rpc') {
    ws.close(1008, 'no such route');
    return;
  }
  const state = { filters: new Set() };
  if (path === '/mqtt') ws.send(status());
  ws.on('message', (data, isBinary) => {
    if (isBinary) return error(ws, undefined, 'bad_request', 'binary frames are not accepted');
    let msg;
    try {
      msg = JSON.parse(data.toString('utf8'));
    } catch {
      return error(ws, undefined, 'bad_request', 'the frame is not valid JSON');
    }
    if (msg === null || typeof msg !== 'object') return error(ws, undefined, 'bad_request', 'a request must be a JSON object');
    switch (path === '/rpc' ? (msg.type === 'request' ? 'request' : 'other') : msg.type) {
      case 'subscribe':
        return subscribe(ws, state, msg);
      case 'unsubscribe':
        unsubscribe(ws, state, msg.topic);
        if (msg.id !== undefined) reply(ws, { type: 'ack', id: msg.id });
        return undefined;
      case 'publish':
        return publish(ws, msg);
      case 'ping':
        return reply(ws, msg.id !== undefined ? { type: 'pong', id: msg.id } : { type: 'pong' });
      case 'request':
        return request(ws, msg);
      default:
        return error(ws, msg.id, 'bad_request', `unknown type "${msg.type}"`);
    }
  });
  ws.on('close', () => {
    for (const filter of state.filters) unsubscribe(ws, state, filter);
  });
  ws.on('error', () => {});
});

wss.on('listening', () => console.log(JSON.stringify({ event: 'listening', port, tls: Boolean(tls) })));
const stop = () => {
  wss.close();
  client.end(true);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
