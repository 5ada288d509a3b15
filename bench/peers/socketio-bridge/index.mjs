// The Socket.IO bridge wsbridge's HTTP fallback transports are measured against (bench/run
// --phases fallback, issue #16.6), written as a competent user would: socket.io 4 restricted to
// its long-polling transport (`transports: ['polling']`, what its clients fall back to where
// WebSockets are blocked), one shared MQTT client with reference-counted subscriptions (one MQTT
// SUBSCRIBE per topic, the room's members get its messages), each message parsed once and
// broadcast to the topic's room (socket.io encodes a broadcast once for all its members).
//
//   node index.mjs --port 8084 --mqtt mqtt://127.0.0.1:1883
//
// Clients (Engine.IO 4 polling: GET /socket.io/?EIO=4&transport=polling, then POST "40") emit
// `subscribe` with a topic and an ack callback; the ack comes after the broker's SUBACK (as
// wsbridge's {"type":"ack"}). Each MQTT message reaches every member of the topic's room as the
// event `message` with the object wsbridge's JSON protocol sends:
// {"type":"message","topic":...,"payload":<the JSON payload>,"qos":0,"retain":false}.
import http from 'node:http';
import { Server } from 'socket.io';
import mqtt from 'mqtt';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const port = Number(args.port ?? 8084);
const brokerUrl = args.mqtt ?? 'mqtt://127.0.0.1:1883';

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ['polling'],
  serveClient: false,
  cors: { origin: true, credentials: true },
  // socket.io's defaults for the rest: pingInterval 25 s, pingTimeout 20 s,
  // maxHttpBufferSize 1 MB, no per-message compression (perMessageDeflate is WebSocket only).
});

const client = mqtt.connect(brokerUrl, {
  clientId: `socketio-bridge-${process.pid}`,
  clean: true,
  reconnectPeriod: 500,
  keepalive: 30,
});
const topics = new Map(); // topic -> { members, acked, waiting: [callback] }

function decodePayload(buf) {
  const text = buf.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

client.on('message', (topic, payloadBuf, packet) => {
  if (!topics.has(topic)) return;
  io.to(topic).emit('message', {
    type: 'message', topic, payload: decodePayload(payloadBuf), qos: packet.qos, retain: packet.retain,
  });
});
client.on('error', (err) => console.error('mqtt:', err.message));
client.on('connect', () => {
  for (const [topic, entry] of topics) if (entry.members > 0) client.subscribe(topic, { qos: 0 });
});

function validTopic(topic) {
  return typeof topic === 'string' && topic.length > 0 && topic.length < 65536 && !/[+#\0]/.test(topic);
}

io.on('connection', (socket) => {
  const mine = new Set();
  socket.on('subscribe', (topic, ack) => {
    const reply = typeof ack === 'function' ? ack : () => {};
    if (!validTopic(topic)) return reply({ error: 'invalid topic' });
    if (mine.has(topic)) return reply({ ok: true });
    mine.add(topic);
    socket.join(topic);
    let entry = topics.get(topic);
    if (!entry) {
      entry = { members: 0, acked: false, waiting: [] };
      topics.set(topic, entry);
      client.subscribe(topic, { qos: 0 }, (err) => {
        entry.acked = true;
        for (const cb of entry.waiting) cb(err ? { error: err.message } : { ok: true });
        entry.waiting = [];
      });
    }
    entry.members += 1;
    if (entry.acked) reply({ ok: true });
    else entry.waiting.push(reply);
  });
  socket.on('disconnect', () => {
    for (const topic of mine) {
      const entry = topics.get(topic);
      if (entry && --entry.members === 0) {
        topics.delete(topic);
        client.unsubscribe(topic);
      }
    }
  });
});

httpServer.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ event: 'listening', port }));
});
process.on('SIGTERM', () => {
  io.close();
  client.end(true);
  process.exit(0);
});
