// What the MQTT pass-through tests (#17, label mqtt-passthrough) share: a real mosquitto that only
// knows the bridge's service user and an observer (password_file + acl_file, everything logged so
// the tests can read what reached it), a real wsbridge, mosquitto_pub / mosquitto_sub as the
// broker-side clients, HS256 tokens, and mqtt.js connections. Each test file starts its own broker
// and wsbridge on free loopback ports.
import { spawn, execFile, execFileSync } from 'node:child_process';
import { createHmac, createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceDir = path.resolve(here, '..', '..');
export const nodeModules = path.join(here, 'node_modules');
const binary = process.env.WSBRIDGE_BINARY ?? path.join(sourceDir, 'build', 'release', 'wsbridge');

// The broker's users: wsbridge's service account (the only one a pass-through connection may
// arrive as) and the tests' own observer (mosquitto_pub / mosquitto_sub).
export const SERVICE = { user: 'bridge', password: 'bridge-service-secret' };
export const OBSERVER = { user: 'observer', password: 'observer-secret' };
export const JWT_SECRET = 'an-hmac-secret-of-at-least-32-bytes!';
export const API_KEY = 'alice-api-key-0123456789';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tempDir() {
  return mkdtempSync(path.join(tmpdir(), 'wsbridge-mqtt-pass-'));
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

// A port for a server a test starts, below the kernel's ephemeral range: listen(0) picks from
// that range, where an outgoing connection of any test running beside (their source ports come
// from it) can take the port before the server under test binds it ("address in use").
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
})();
const PORTS_FROM = 10000;
// Ports browsers refuse to load from (Chromium's and Firefox's restricted ports; 10080 is the
// one in this range): a page served there fails with net::ERR_UNSAFE_PORT (seen in e2e.cluster).
const BROWSER_RESTRICTED = new Set([10080]);
const handedOut = new Set(BROWSER_RESTRICTED);  // (never twice in one test process)

function listenOnce(port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(null));
    srv.listen(port, '127.0.0.1', () => {
      const { port: bound } = srv.address();
      srv.close(() => resolve(bound));
    });
  });
}

export async function freePort() {
  for (let i = 0; i < 200 && EPHEMERAL_LOW > PORTS_FROM + 1000; ++i) {
    const port = PORTS_FROM + Math.floor(Math.random() * (EPHEMERAL_LOW - PORTS_FROM));
    if (handedOut.has(port)) continue;
    if (await listenOnce(port) === port) {
      handedOut.add(port);
      return port;
    }
  }
  const port = await listenOnce(0);  // (a machine whose ephemeral range leaves no room below)
  if (port === null) throw new Error('no free TCP port on 127.0.0.1');
  return port;
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = tcpConnect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// SIGSTOP, and until every thread of the process is stopped (state T in /proc): a test that then
// asks it something must not see an answer it was still giving (a busy machine delays the stop).
export async function freeze(proc) {
  proc.kill('SIGSTOP');
  const stopped = () => {
    try {
      return readdirSync(`/proc/${proc.pid}/task`).every((task) =>
        /^\d+ \(.*\) [Tt] /.test(readFileSync(`/proc/${proc.pid}/task/${task}/stat`, 'utf8')));
    } catch {
      return false;
    }
  };
  await waitFor(stopped, `process ${proc.pid} to stop`, 5000);
}

export async function waitFor(check, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// A child process whose output is kept (for checks and failure messages).
export class Child {
  constructor(cmd, args, env = process.env) {
    this.output = '';
    this.proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.proc.stdout.on('data', (d) => { this.output += d; });
    this.proc.stderr.on('data', (d) => { this.output += d; });
    this.exited = new Promise((resolve) => this.proc.once('exit', resolve));
  }
  get running() { return this.proc.exitCode === null && this.proc.signalCode === null; }
  async stop(signal = 'SIGTERM') {
    if (!this.running) return;
    this.proc.kill(signal);
    await this.exited;
  }
}

// mosquitto with authentication on: anonymous clients and unknown users are refused, so a browser
// whose own username/password reached it could not connect. `log_type all` logs every packet
// (client ids, usernames, SUBSCRIBE filters): the tests read it to see what reached the broker.
// The log is a file (mosquitto flushes it per line, not a piped stdout); `user root` keeps a
// broker started as root from dropping to the mosquitto user, which could not read our files.
export class Broker {
  constructor(dir, port) {
    this.port = port;
    this.config = path.join(dir, 'mosquitto.conf');
    this.logFile = path.join(dir, 'mosquitto.log');
    const passwords = path.join(dir, 'mosquitto.passwd');
    const acl = path.join(dir, 'mosquitto.acl');
    writeFileSync(passwords, '');
    chmodSync(passwords, 0o600);
    for (const { user, password } of [SERVICE, OBSERVER]) {
      execFileSync('mosquitto_passwd', ['-b', passwords, user, password]);
    }
    writeFileSync(acl, `user ${SERVICE.user}\ntopic readwrite #\n\nuser ${OBSERVER.user}\ntopic readwrite #\n`);
    chmodSync(acl, 0o600);
    writeFileSync(this.config, [
      `listener ${port} 127.0.0.1`, 'allow_anonymous false', `password_file ${passwords}`,
      `acl_file ${acl}`, 'persistence false', 'user root', `log_dest file ${this.logFile}`,
      'log_type all', 'connection_messages true', 'log_timestamp false', ''].join('\n'));
  }
  async start() {
    this.child = new Child('/usr/sbin/mosquitto', ['-c', this.config]);
    await waitFor(async () => {
      if (!this.child.running) throw new Error(`mosquitto exited: ${this.child.output}${this.log}`);
      return portOpen(this.port);
    }, `mosquitto on port ${this.port}`);
  }
  stop(signal = 'SIGTERM') { return this.child?.stop(signal); }
  // Everything logged so far, across restarts.
  get log() {
    try { return readFileSync(this.logFile, 'utf8'); } catch { return ''; }
  }
}

// The observer's options for mosquitto_pub / mosquitto_sub.
function observerArgs(port) {
  return ['-h', '127.0.0.1', '-p', String(port), '-u', OBSERVER.user, '-P', OBSERVER.password];
}

// Publishes one message (payload: a string, or { file } for binary content) and waits for
// mosquitto_pub to finish (QoS 1 and 2: the broker acknowledged it).
export function mosquittoPub(broker, topic, payload, { qos = 0, retain = false } = {}) {
  const args = [...observerArgs(broker.port), '-t', topic, '-q', String(qos)];
  if (retain) args.push('-r');
  if (typeof payload === 'object') args.push('-f', payload.file);
  else args.push('-m', payload);
  return new Promise((resolve, reject) => {
    execFile('mosquitto_pub', args, (err, stdout, stderr) => (
      err ? reject(new Error(`mosquitto_pub ${topic}: ${err.message} ${stderr}`)) : resolve()));
  });
}

// mosquitto_sub printing "topic qos retain hex-payload" per message (-F), started and subscribed
// (its -d output shows the SUBACK) before `start` resolves. stdbuf: its stdout is a pipe, which
// stdio would otherwise buffer until exit.
export class MosquittoSub {
  static async start(broker, filter, qos = 2) {
    const sub = new MosquittoSub();
    sub.child = new Child('stdbuf', ['-oL', 'mosquitto_sub', ...observerArgs(broker.port), '-d', '-q', String(qos),
      '-t', filter, '-F', 'MSG %t %q %r %x\\n']);
    await waitFor(() => /SUBACK/.test(sub.child.output), `mosquitto_sub ${filter} subscribed`);
    return sub;
  }
  // [{ topic, qos, retain, payload: Buffer }] received so far.
  get messages() {
    const complete = this.child.output.slice(0, this.child.output.lastIndexOf('\n') + 1);
    return [...complete.matchAll(/^MSG (\S+) (\d) (\d) ([0-9a-f]*)$/gm)].map((m) => ({
      topic: m[1], qos: Number(m[2]), retain: m[3] === '1', payload: Buffer.from(m[4], 'hex'),
    }));
  }
  async waitForTopic(topic, timeoutMs = 10000) {
    await waitFor(() => this.messages.some((m) => m.topic === topic),
      `mosquitto_sub to see ${topic}; it saw ${JSON.stringify(this.messages.map((m) => m.topic))}`,
      timeoutMs);
    return this.messages.find((m) => m.topic === topic);
  }
  stop() { return this.child.stop(); }
}

// wsbridge with `toml` as its config; ${BROKER_PORT}-style placeholders are the caller's. The
// service threads follow WSBRIDGE_TEST_THREADS (scripts/test.sh runs the suite with 1 and 2).
// It serves a blank index.html (static_dir) for the browser tests: Paho JS needs an origin with
// localStorage, which about:blank has not.
export class Bridge {
  // `threads`: [server] threads (default: $WSBRIDGE_TEST_THREADS, else 2).
  constructor(dir, port, toml, { threads } = {}) {
    this.port = port;
    this.config = path.join(dir, 'wsbridge.toml');
    const site = path.join(dir, 'static');
    mkdirSync(site, { recursive: true });
    writeFileSync(path.join(site, 'index.html'), '<!doctype html><title>mqtt pass-through</title>\n');
    const count = threads ?? (process.env.WSBRIDGE_TEST_THREADS || '2');
    writeFileSync(this.config, `[server]\nthreads = ${count}\nshutdown_timeout = "1s"\n` +
      `static_dir = "${site}"\n${toml}`);
  }
  async start() {
    this.child = new Child(binary, ['--config', this.config],
      { ...process.env, WSBRIDGE_TEST_JWT_SECRET: JWT_SECRET });
    await waitFor(async () => {
      if (!this.child.running) throw new Error(`wsbridge exited:\n${this.child.output}`);
      return portOpen(this.port);
    }, 'wsbridge');
  }
  stop() { return this.child?.stop(); }
  get log() { return this.child?.output ?? ''; }
  url(route) { return `ws://127.0.0.1:${this.port}${route}`; }
  get page() { return `http://127.0.0.1:${this.port}/`; }
}

// The [jwt.main] and [[api_keys]] tables matching token() and API_KEY.
export const AUTH_TABLES = `
[jwt.main]
secret_env = "WSBRIDGE_TEST_JWT_SECRET"
issuer = "tests"
audience = ["wsbridge"]
leeway = "0s"
[[api_keys]]
name = "alice"
sha256 = "${createHash('sha256').update(API_KEY).digest('hex')}"
`;

// The routes every pass-through test file uses (ACL patterns as in json mode):
//   /mqtt          pass-through; anonymous, or a JWT / API key at the upgrade; 3.1.1 denied
//                  publishes dropped; 5 MiB WebSocket messages for the 1 MiB payloads
//   /mqtt-strict   the same with denied_publish = "disconnect"
//   /mqtt-auth     credentials required at the upgrade
//   /mqtt-connect  credentials required, taken from CONNECT's password ("mqtt_connect")
//   /mqtt-limited  5 PUBLISH packets/s
//   /mqtt-narrow   subscriptions to sensors/# only (client ids in the same namespace as /mqtt)
//   /echo          a route that does not speak MQTT
export function bridgeConfig(bridgePort, brokerPort) {
  const passthrough = (path, extra = '',
    subscribe = '["sensors/#", "retained/#", "wills/#", "users/{user}/#"]') => `
[[routes]]
path = "${path}"
adapter = "mqtt"
mode = "passthrough"
upstream = "local"
allow_subscribe = ${subscribe}
allow_publish = ["sensors/#", "wills/#", "users/{user}/out/#"]
client_id = "{user}:{client_id}"
keepalive_min = "5s"
keepalive_max = "300s"
max_message_bytes = "5MiB"
${extra}`;
  return `${AUTH_TABLES}
[[listeners]]
address = "127.0.0.1"
port = ${bridgePort}
[upstreams.local]
uri = "tcp://127.0.0.1:${brokerPort}"
username = "${SERVICE.user}"
password = "${SERVICE.password}"
reconnect_min = "200ms"
reconnect_max = "1s"
${passthrough('/mqtt', 'denied_publish = "drop"\n[routes.auth]\njwt = "main"\napi_keys = true\nrequired = false')}
${passthrough('/mqtt-strict', 'denied_publish = "disconnect"')}
${passthrough('/mqtt-auth', '[routes.auth]\njwt = "main"\napi_keys = true\nrequired = true')}
${passthrough('/mqtt-connect', '[routes.auth]\njwt = "main"\napi_keys = true\nrequired = true\n' +
    'credentials = ["header", "query", "mqtt_connect"]')}
${passthrough('/mqtt-limited', 'publish_rate = 5\npublish_burst = 5')}
${passthrough('/mqtt-narrow', '', '["sensors/#"]')}
[[routes]]
path = "/echo"
adapter = "echo"
`;
}

// Starts a broker and a wsbridge (bridgeConfig) in a fresh directory.
export async function startServers() {
  const dir = tempDir();
  const broker = new Broker(dir, await freePort());
  let bridge;
  try {
    await broker.start();
    const port = await freePort();
    bridge = new Bridge(dir, port, bridgeConfig(port, broker.port));
    await bridge.start();
    return { dir, broker, bridge };
  } catch (e) {
    // Nothing may keep running: a live child would keep the test process from ever exiting.
    await bridge?.stop();
    await broker.stop();
    removeDir(dir);
    throw e;
  }
}

// Stops them; their logs go to E2E_ARTIFACTS (CMake sets it) for a failure's post-mortem.
export async function stopServers({ dir, broker, bridge } = {}, name) {
  await bridge?.stop();
  await broker?.stop();
  const artifacts = process.env.E2E_ARTIFACTS;
  if (artifacts && broker && bridge) {
    mkdirSync(artifacts, { recursive: true });
    writeFileSync(path.join(artifacts, `${name}.mosquitto.log`), broker.log);
    writeFileSync(path.join(artifacts, `${name}.wsbridge.log`), bridge.log);
  }
  if (dir) removeDir(dir);
}

// Resolves as `promise`, or rejects after `ms` naming `what`.
export function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const b64url = (s) => Buffer.from(s).toString('base64url');

// An HS256 token for `sub` that [jwt.main] accepts.
export function token(sub, ttlSeconds = 300) {
  const claims = { sub, iss: 'tests', aud: 'wsbridge', exp: Math.floor(Date.now() / 1000) + ttlSeconds };
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac('sha256', JWT_SECRET).update(input).digest('base64url')}`;
}

// An mqtt.js client (no reconnects unless asked), resolved once connected; rejected with the
// client's error, or when nothing happened in time. `client.sockets` holds its WebSockets (Node's
// `ws`), so a test can cut the TCP connection under it.
export function connectMqtt(url, options = {}, timeoutMs = 8000) {
  const sockets = [];
  const client = mqtt.connect(url, {
    reconnectPeriod: 0, connectTimeout: timeoutMs, ...options,
    createWebsocket: (u, protocols, opts) => {
      const ws = new WebSocket(u, protocols, opts?.wsOptions);
      ws.on('close', (code, reason) => { ws.closeInfo = { code, reason: reason.toString() }; });
      ws.on('error', (err) => { ws.lastError = err; });  // e.g. "Unexpected server response: 401"
      sockets.push(ws);
      return ws;
    },
  });
  client.sockets = sockets;
  client.received = [];
  client.packets = [];  // every packet received (CONNACK, SUBACK, DISCONNECT, ...)
  client.on('packetreceive', (packet) => client.packets.push(packet));
  client.on('message', (topic, payload, packet) => client.received.push({ topic, payload, packet }));
  // Every error the client reports after its first CONNACK, kept for the test's report: a client
  // that reconnects carries on after one (a drained instance's TCP reset, say).
  client.errors = [];
  return new Promise((resolve, reject) => {
    // These decide the first connection only: left on, the error handler would end a client
    // that was asked to reconnect at its first stream error after it connected.
    const settle = () => {
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
      client.on('error', (err) => client.errors.push(err.message));
    };
    const onConnect = (connack) => { settle(); client.connack = connack; resolve(client); };
    const onError = (err) => { settle(); client.end(true); err.client = client; reject(err); };
    const onClose = () => { settle(); reject(Object.assign(new Error(`closed before CONNACK: ${url}`), { client })); };
    const timer = setTimeout(() => { settle(); client.end(true); reject(new Error(`no connect to ${url}`)); }, timeoutMs + 1000);
    client.once('connect', onConnect);
    client.once('error', onError);
    client.once('close', onClose);
  });
}

// Resolves with the next message on `topic` the client receives (or one already received).
export async function nextMessage(client, topic, timeoutMs = 8000) {
  await waitFor(() => client.received.some((m) => m.topic === topic),
    `${topic} at the client; it got ${JSON.stringify(client.received.map((m) => m.topic))}`, timeoutMs);
  return client.received.find((m) => m.topic === topic);
}

// SUBSCRIBE with several filters; resolves with the SUBACK's return codes in order (mqtt.js
// reports a failure code as an error but still hands over the packet).
export function subscribeCodes(client, filters) {
  return new Promise((resolve, reject) => {
    client.subscribe(filters, (err, _subs, packet) => {
      if (packet?.granted) resolve(packet.granted);
      else reject(err ?? new Error('no SUBACK'));
    });
  });
}

export function endClient(client) {
  return client ? client.endAsync(true).catch(() => {}) : Promise.resolve();
}

// A bare `ws` client that speaks MQTT bytes: the witness of what wsbridge sends, frame by frame,
// up to its close frame. (mqtt.js destroys its WebSocket as soon as it sees the connection end,
// often before `ws` has read the close frame or the last packets, so after a close wsbridge
// decides, its close code reads 1006 and its packet list may miss the DISCONNECT.)
export async function rawMqtt(url, version, clientId) {
  const ws = new WebSocket(url, ['mqtt']);
  const frames = [];
  ws.on('message', (data) => frames.push(Buffer.from(data)));
  const closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }),
    5000, `the upgrade of ${url}`);
  ws.send(connectPacket(version, clientId));
  await waitFor(() => frames.length > 0, 'the CONNACK', 5000);
  return { ws, frames, closed };
}

// The remaining-length encoding of MQTT's fixed header.
function remainingLength(n) {
  const out = [];
  do {
    const byte = n % 128;
    n = Math.floor(n / 128);
    out.push(n > 0 ? byte | 0x80 : byte);
  } while (n > 0);
  return Buffer.from(out);
}

// CONNECT, clean session, keepalive 60, no will, user name or password (MQTT 5: no properties).
export function connectPacket(version, clientId) {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, version, 0x02, 0, 60]),
    Buffer.from(version === 5 ? [0] : []), Buffer.from([id.length >> 8, id.length & 0xff]), id]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

// A QoS 0 PUBLISH (MQTT 5 adds an empty property length).
export function publishPacket(topic, payload, version) {
  const t = Buffer.from(topic);
  const body = Buffer.concat([Buffer.from([t.length >> 8, t.length & 0xff]), t,
    Buffer.from(version === 5 ? [0] : []), Buffer.from(payload)]);
  return Buffer.concat([Buffer.from([0x30]), remainingLength(body.length), body]);
}

// The reason code of the MQTT 5 DISCONNECT among `frames` (undefined when none came).
export function disconnectReason(frames) {
  const d = frames.find((f) => f[0] === 0xe0);
  return d === undefined ? undefined : (d.length > 2 ? d[2] : 0);
}
