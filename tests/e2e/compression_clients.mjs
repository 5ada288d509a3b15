// permessage-deflate against a running wsbridge with Node's `ws` (perMessageDeflate) and wscat,
// clients nobody on this project wrote, through compression_sniffer.mjs so the RSV1 bit of every
// frame is checked on the wire. Run by tests/integration/compression_foreign_test.cpp, which
// starts wsbridge (and mosquitto):
//   node compression_clients.mjs CASE --port P [--broker-port B] [--clients N]
// Exit status 0 when every check holds; failures are printed.
import { spawn, execFileSync } from 'node:child_process';
import { deflateRawSync, constants as zlibConstants } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { check, failures, startSniffer, extensionsHeader, checkContractResponse } from './compression_sniffer.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const THRESHOLD = 128;  // the contract's default compression_threshold
const KIB = 1024;
const MIB = 1024 * KIB;

// Deterministic payloads: compressible text (ASCII, no newline: wscat reads lines), bytes in
// runs (compressible over the whole 0..255 range) and incompressible bytes.
function rng(seed) {
  let x = (seed * 2654435761) >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}
export function textPayload(size, seed = 0) {
  const words = ['temperature', 'humidity', 'sensor', 'kitchen', '21.5', '40%', 'ok', 'status'];
  const next = rng(seed + 1);
  let out = '';
  while (out.length < size) out += `${words[next() % words.length]} `;
  return out.slice(0, size);
}
function runsPayload(size, seed = 1) {
  const next = rng(seed + 7);
  const out = Buffer.alloc(size);
  for (let i = 0; i < size;) {
    const byte = next() & 0xff;
    for (let n = 1 + (next() % 8); n > 0 && i < size; n--) out[i++] = byte;
  }
  return out;
}
function randomPayload(size, seed = 2) {
  const next = rng(seed + 13);
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = next() & 0xff;
  return out;
}

// The contract: a server frame is compressed when the message is >= threshold and shrinks.
// null (not checked) near the boundary, where the server's framing may decide either way.
function expectCompressed(message) {
  const data = Buffer.from(message);
  if (data.length < THRESHOLD) return false;
  const ratio = (deflateRawSync(data, { level: 1, finishFlush: zlibConstants.Z_SYNC_FLUSH }).length - 4) / data.length;
  return ratio < 0.9 ? true : ratio > 1.0 ? false : null;
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); })]);
}

function open(url, options) {
  const ws = new WebSocket(url, { maxPayload: 4 * MIB, ...options });
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    const m = { data: isBinary ? Buffer.from(data) : data.toString('utf8'), isBinary };
    if (waiters.length) waiters.shift()(m); else queue.push(m);
  });
  let closed = null;
  ws.on('close', (code, reason) => {
    closed = new Error(`connection closed: ${code} ${reason}`);
    for (const w of waiters.splice(0)) w(Promise.reject(closed));
  });
  ws.next = () => {
    if (queue.length) return Promise.resolve(queue.shift());
    if (closed) return Promise.reject(closed);
    return new Promise((r) => waiters.push(r));
  };
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), 10000, `open ${url}`);
}

// The response header as the contract says (a failure is reported, the exchange goes on).
function contractResponse(record, label, serverMaxWindowBits = null) {
  try {
    checkContractResponse(extensionsHeader(record.response), serverMaxWindowBits);
  } catch (e) {
    check(false, `${label}: ${e.message}`);
  }
}

// Server frames that started a data message, in order, for one sniffed connection.
const firstFrames = (frames) => frames.filter((f) => f.first);

async function echoAll(ws, record, label, messages) {
  for (const message of messages) {
    const binary = Buffer.isBuffer(message);
    const what = `${label}: ${binary ? 'binary' : 'text'} ${message.length} B`;
    ws.send(message, { binary });
    const got = await withTimeout(ws.next(), 20000, what);
    if (!check(got.isBinary === binary && (binary ? got.data.equals(message) : got.data === message),
      `${what}: echo differs (${got.isBinary ? 'binary' : 'text'} of ${got.data.length})`)) continue;
    const sent = firstFrames(record.toServer).at(-1);
    const back = firstFrames(record.toClient).at(-1);
    // ws with threshold 0 compresses every message it sends: the server inflated them all.
    check(sent?.rsv1 === true, `${what}: the client's frame was not compressed`);
    const want = expectCompressed(message);
    if (want !== null) check(back?.rsv1 === want, `${what}: server frame RSV1 ${back?.rsv1}, expected ${want}`);
  }
}

const SIZES = [1, 100, 127, 128, 200, 64 * KIB, MIB - KIB];
const messagesOf = (sizes) => sizes.flatMap((s) => [textPayload(s, s), runsPayload(s, s), randomPayload(s, s)]);

async function caseWsEcho(args) {
  const sniffer = await startSniffer(args.port);
  try {
    const offers = [
      ['default', { threshold: 0 }, null],
      ['server_no_context_takeover, client_max_window_bits=10',
        { threshold: 0, serverNoContextTakeover: true, clientMaxWindowBits: 10 }, null],
      ['server_max_window_bits=10', { threshold: 0, serverMaxWindowBits: 10 }, 10],
      ['client_no_context_takeover', { threshold: 0, clientNoContextTakeover: true }, null],
    ];
    for (const [label, perMessageDeflate, smwb] of offers) {
      const ws = await open(`ws://127.0.0.1:${sniffer.port}/echo`, { perMessageDeflate });
      const record = sniffer.connections.at(-1);
      try {
        contractResponse(record, label, smwb);
        await echoAll(ws, record, label, label === 'default' ? messagesOf(SIZES)
          : messagesOf([200, 64 * KIB]));
      } catch (e) {
        check(false, `${label}: ${e.message}`);
      } finally {
        ws.close();
      }
    }
    const seen = new Set(sniffer.connections[0].toClient.filter((f) => f.first).map((f) => f.rsv1));
    check(seen.has(true) && seen.has(false), `server RSV1 values seen: ${[...seen]}`);
  } finally {
    await sniffer.close();
  }
}

// wscat, driven through stdin/stdout as a person would: one line out, its echo back.
async function caseWscat(args) {
  const sniffer = await startSniffer(args.port);
  const wscat = spawn(process.execPath, [path.join(here, 'node_modules', 'wscat', 'bin', 'wscat'),
    '--no-color', '-c', `ws://127.0.0.1:${sniffer.port}/echo`], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  wscat.stdout.on('data', (d) => { out += d; });
  wscat.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((r) => wscat.once('exit', r));
  try {
    // Connected once the sniffer saw the server's response head.
    await withTimeout((async () => {
      while (!sniffer.connections[0]?.response) await new Promise((r) => setTimeout(r, 20));
    })(), 10000, 'wscat connecting');
    const record = sniffer.connections[0];
    contractResponse(record, 'wscat');
    for (const size of [1, 100, 200, 2000, 64 * KIB, MIB - KIB]) {
      const line = textPayload(size, size);
      const before = out.length;
      wscat.stdin.write(`${line}\n`);
      await withTimeout((async () => {
        while (!out.slice(before).includes('\n') && wscat.exitCode === null) {
          await new Promise((r) => setTimeout(r, 10));
        }
      })(), 20000, `wscat echo of ${size} B`);
      // Without a terminal wscat still writes its readline prompt ("> ") before lines.
      const got = out.slice(before, out.indexOf('\n', before)).replace(/^(> )+/, '');
      if (!check(got === line, `wscat ${size} B: echo differs (${got.length} B: ${got.slice(0, 60)})`)) continue;
      // wscat's ws compresses what it sends from 1 KiB on (ws' default threshold).
      const sent = firstFrames(record.toServer).at(-1);
      const back = firstFrames(record.toClient).at(-1);
      check(sent?.rsv1 === size >= 1024, `wscat ${size} B: client frame RSV1 ${sent?.rsv1}`);
      check(back?.rsv1 === expectCompressed(line), `wscat ${size} B: server frame RSV1 ${back?.rsv1}`);
    }
  } catch (e) {
    check(false, `wscat: ${e.message}; stderr: ${err}`);
  } finally {
    wscat.stdin.end();
    await withTimeout(exited, 5000, 'wscat exit').catch(() => wscat.kill('SIGKILL'));
    await sniffer.close();
  }
}

// Node ws clients with deflate subscribed to one MQTT topic; mosquitto_pub publishes 200 B and
// 256 KiB of compressible text; each client gets each byte-exact, in a compressed frame.
async function caseFanout(args) {
  const sniffer = await startSniffer(args.port);
  const topic = 'fan/node';
  const clients = [];
  try {
    for (let i = 0; i < args.clients; i++) {
      const ws = await open(`ws://127.0.0.1:${sniffer.port}/mqtt`, { perMessageDeflate: true });
      clients.push(ws);
      ws.send(JSON.stringify({ type: 'subscribe', topic, id: `s${i}` }));
    }
    for (const [i, ws] of clients.entries()) {
      for (;;) {
        const m = JSON.parse((await withTimeout(ws.next(), 20000, `client ${i} ack`)).data);
        if (m.id === `s${i}`) { check(m.type === 'ack', `client ${i}: ${JSON.stringify(m)}`); break; }
      }
    }
    for (const [i, record] of sniffer.connections.entries()) contractResponse(record, `client ${i}`);
    for (const size of [200, 256 * KIB]) {
      const payload = textPayload(size, size + 1);
      execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(args.brokerPort), '-t', topic, '-s'],
        { input: payload, timeout: 20000 });
      const got = await Promise.all(clients.map((ws, i) => withTimeout(ws.next(), 30000, `client ${i}: ${size} B`)));
      for (const [i, m] of got.entries()) {
        const message = JSON.parse(m.data);
        check(message.type === 'message' && message.payload === payload, `client ${i}: ${size} B payload differs`);
        check(firstFrames(sniffer.connections[i].toClient).at(-1)?.rsv1 === true, `client ${i}: ${size} B not compressed`);
      }
    }
  } finally {
    for (const ws of clients) ws.close();
    await sniffer.close();
  }
}

const CASES = { 'ws-echo': caseWsEcho, wscat: caseWscat, fanout: caseFanout };
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { port: { type: 'string' }, 'broker-port': { type: 'string' }, clients: { type: 'string', default: '50' } },
});
const args = { port: Number(values.port), brokerPort: Number(values['broker-port']), clients: Number(values.clients) };
const name = positionals[0];
try {
  if (!CASES[name]) throw new Error(`unknown case ${name}; one of ${Object.keys(CASES)}`);
  await withTimeout(CASES[name](args), 50000, name);
} catch (e) {
  check(false, `${name}: ${e.stack ?? e}`);
}
console.log(`${name}: ${failures.length ? `${failures.length} failure(s)` : 'OK'}`);
process.exit(failures.length ? 1 : 0);
