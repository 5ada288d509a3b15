// The cluster tests' harness (#19, label cluster): everything on loopback, on free ports, started
// by the tests and stopped after them:
//
//   broker A ◄──bridge (topic # both 1, topic $wsbridge/# both 1)── broker B
//      ▲   ▲                                                          ▲
//   node-a node-b                                                   node-c      (wsbridge, each with
//      ▲   ▲                                                          ▲          an [admin] listener
//      └───┴───────── haproxy, round robin, GET /healthz checks ──────┘          and static files)
//
//   const cluster = await Cluster.start({ ...options });   ...   await cluster.stop();
//
// Options (all optional):
//   nodes        [{ name, broker: 'A' | 'B' }]; default node-a, node-b on A and node-c on B
//   threads      service threads per instance (default WSBRIDGE_TEST_THREADS, else 1)
//   serverToml   (node, cluster) => TOML lines inside [server] (after instance_id), e.g.
//                drain_delay and reconnect_spread; or an object { 'node-a': '...', ... }
//   extraToml    (node, cluster) => TOML appended at the end, e.g. `extraToml: clusterToml` for
//                a [cluster] table on every node; or an object { 'node-a': '...', ... }
//   routesToml   (node, cluster) => the upstream and routes (default: defaultRoutesToml)
//   haproxy      false: no balancer
//   controlPrefix  the control-topic prefix the brokers' ACLs let wsbridge and the observer use
//                (default '$wsbridge'); the brokers bridge it both ways
// The [admin] listener of every node takes ADMIN_TOKEN. `node.toml` is the config as written;
// `node.writeConfig()` rewrites it from the options (after changing node.extra, say), and
// `node.restart()` starts the instance again on the same port.
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect as tcpConnect } from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import {
  AUTH_TABLES, Broker, Child, JWT_SECRET, MosquittoSub, OBSERVER, SERVICE, freePort, mosquittoPub,
  removeDir, sleep, sourceDir, waitFor,
} from './mqtt_passthrough_support.mjs';
import { mqttRouteToml, request } from './fallback_support.mjs';
import { copyWsbridgeLibrary } from './wsbridge_library.mjs';

export const binary = process.env.WSBRIDGE_BINARY ?? path.join(sourceDir, 'build', 'release', 'wsbridge');
export const ADMIN_TOKEN = 'cluster-admin-token-0123456789';
export const DEFAULT_NODES = [
  { name: 'node-a', broker: 'A' }, { name: 'node-b', broker: 'A' }, { name: 'node-c', broker: 'B' },
];

// Every child process of this harness, killed if the test process exits without stopping them.
const live = new Set();
process.on('exit', () => { for (const c of live) { try { c.proc.kill('SIGKILL'); } catch { /* gone */ } } });
function track(child) {
  live.add(child);
  child.exited.then(() => live.delete(child));
  return child;
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = tcpConnect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// The binary is rebuilt from time to time: wait for it to be there rather than fail at once.
export async function waitForBinary(timeoutMs = 120000) {
  await waitFor(() => existsSync(binary), `the wsbridge binary ${binary}`, timeoutMs);
}

// The default upstream and routes of an instance: its broker through the shared JSON route /mqtt
// (ACLs sensors/#), where a JWT from token() (mqtt_passthrough_support.mjs) makes a user (anonymous
// clients still connect), and /echo.
export function defaultRoutesToml(node) {
  return `${AUTH_TABLES}
${mqttRouteToml(node.broker.port)}[routes.auth]
jwt = "main"
required = false
[[routes]]
path = "/echo"
adapter = "echo"
`;
}

// An MQTT pass-through route (docs/CONFIG.md, `mode = "passthrough"`) whose upstream is one broker
// for every node (`[upstreams.pass]`), whatever broker the node's own routes use: a persistent
// session lives on one broker, so a client that comes back through another instance finds it only
// there (bridged mosquittos do not share sessions; a broker cluster such as EMQX would). Append it
// to defaultRoutesToml: `routesToml: (n, c) => defaultRoutesToml(n) + passthroughRouteToml(c)`.
export function passthroughRouteToml(cluster, { path: route = '/mqtt-pass', broker = 'A',
  allowSubscribe = ['#'], allowPublish = ['#'] } = {}) {
  const list = (xs) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  return `[upstreams.pass]
uri = "tcp://127.0.0.1:${cluster.brokers[broker].port}"
username = "${SERVICE.user}"
password = "${SERVICE.password}"
reconnect_min = "200ms"
reconnect_max = "1s"
[[routes]]
path = "${route}"
adapter = "mqtt"
mode = "passthrough"
upstream = "pass"
allow_subscribe = ${list(allowSubscribe)}
allow_publish = ${list(allowPublish)}
`;
}

// The value of a Prometheus sample in `text` (GET /metrics): the sum over the series of `name`
// whose labels include `labels`; 0 when there is none.
export function metricValue(text, name, labels = {}) {
  let sum = 0;
  for (const m of text.matchAll(/^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/gm)) {
    if (m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
      .map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

// The shared secret of the [cluster] tables clusterToml writes.
export const CLUSTER_SECRET = 'a-cluster-secret-of-at-least-32-bytes-0123456789';

// A [cluster] table for a node (off by default: pass `extraToml: clusterToml`, or your own
// function of the node calling it with other options): the control messages go through the node's
// own broker, as wsbridge's service user.
export function clusterToml(node, _cluster, { secret = CLUSTER_SECRET, prefix, extra = '' } = {}) {
  return `[cluster]
broker = "tcp://127.0.0.1:${node.broker.port}"
username = "${SERVICE.user}"
password = "${SERVICE.password}"
secret = "${secret}"
${prefix ? `control_prefix = "${prefix}"\n` : ''}${extra}`;
}

// Lets wsbridge's service user and the observer use the control topics too: mosquitto's `#` in an
// ACL does not cover topics that start with `$`.
function brokerAcl(broker, prefix) {
  const lines = [];
  for (const { user } of [SERVICE, OBSERVER]) {
    lines.push(`user ${user}`, 'topic readwrite #', `topic readwrite ${prefix}/#`, '');
  }
  const file = path.join(path.dirname(broker.config), 'mosquitto.acl');
  writeFileSync(file, lines.join('\n'));
  chmodSync(file, 0o600);
}

// Broker B's bridge to A: everything, the control topics included, both ways.
function bridgeToA(brokerB, brokerA, prefix) {
  appendFileSync(brokerB.config, [
    'connection b-to-a', `address 127.0.0.1:${brokerA.port}`, 'remote_clientid cluster-bridge-b-to-a',
    `remote_username ${OBSERVER.user}`, `remote_password ${OBSERVER.password}`,
    'topic # both 1', `topic ${prefix}/# both 1`, 'cleansession true', 'try_private true',
    'notifications false', 'restart_timeout 1', 'keepalive_interval 5', ''].join('\n'));
}

// One wsbridge instance of the cluster.
export class Node {
  constructor(cluster, { name, broker }, dir, port, adminPort) {
    this.cluster = cluster;
    this.name = name;
    this.brokerName = broker;
    this.broker = cluster.brokers[broker];
    this.dir = dir;
    this.port = port;
    this.adminPort = adminPort;
    this.config = path.join(dir, 'wsbridge.toml');
    this.static = path.join(dir, 'static');
    this.logs = []; // the output of every run, the current one last
    this.child = null;
    mkdirSync(this.static, { recursive: true });
    copyWsbridgeLibrary(this.static);
    writeFileSync(path.join(this.static, 'index.html'), `<!doctype html><title>${name}</title>\n`);
    this.writeConfig();
  }

  // (Re)writes the config from the cluster's options; `extra` (if set) replaces extraToml's.
  writeConfig() {
    const o = this.cluster.options;
    const pick = (v) => (typeof v === 'function' ? v(this, this.cluster) : (v?.[this.name] ?? ''));
    const extra = this.extra ?? pick(o.extraToml);
    this.toml = `[server]
instance_id = "${this.name}"
threads = ${o.threads ?? (process.env.WSBRIDGE_TEST_THREADS || 1)}
shutdown_timeout = "1s"
static_dir = "${this.static}"
${pick(o.serverToml)}
[admin]
address = "127.0.0.1"
port = ${this.adminPort}
token = "${ADMIN_TOKEN}"
[[listeners]]
address = "127.0.0.1"
port = ${this.port}
${(o.routesToml ?? defaultRoutesToml)(this, this.cluster)}
${extra}
`;
    writeFileSync(this.config, this.toml);
  }

  get running() { return Boolean(this.child?.running); }
  get log() { return this.logs.join('\n----- restarted -----\n'); }

  async start(timeoutMs = 15000) {
    if (this.running) throw new Error(`${this.name} already runs`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await waitForBinary();
      const child = track(new Child(binary, ['--config', this.config],
        { ...process.env, WSBRIDGE_TEST_JWT_SECRET: JWT_SECRET }));
      let spawnError = null;
      child.proc.on('error', (e) => { spawnError = e; });
      const run = this.logs.length;
      this.logs.push('');
      child.proc.stdout.on('data', (d) => { this.logs[run] += d; });
      child.proc.stderr.on('data', (d) => { this.logs[run] += d; });
      this.child = child;
      try {
        await waitFor(async () => {
          if (spawnError) throw spawnError;
          if (!child.running) throw new Error(`${this.name} exited (${child.proc.exitCode}):\n${this.logs[run]}`);
          return (await this.healthz().catch(() => null))?.status === 'ok';
        }, `${this.name} on port ${this.port}`, Math.max(1000, deadline - Date.now()));
        return this;
      } catch (e) {
        await child.stop('SIGKILL');
        // The binary being replaced under us (ENOENT, ETXTBSY, a half-written file): again.
        if (Date.now() < deadline && (spawnError || /ENOENT|ETXTBSY|exec format/i.test(String(e)))) {
          await sleep(500);
          continue;
        }
        throw e;
      }
    }
  }

  // SIGTERM (the instance's own shutdown), waiting for it to exit.
  stop(signal = 'SIGTERM') { return this.child?.stop(signal); }
  kill() { return this.stop('SIGKILL'); }
  async restart() {
    await this.stop();
    return this.start();
  }

  // Sends a signal without waiting (SIGTERM to watch a drain happen, say); `exited` resolves later.
  signal(sig) { this.child?.proc.kill(sig); }
  get exited() { return this.child?.exited ?? Promise.resolve(); }

  url(route = '/mqtt') { return `ws://127.0.0.1:${this.port}${route}`; }
  get page() { return `http://127.0.0.1:${this.port}/`; }

  // GET /healthz on the listener: {status, version, uptime_seconds, connections} (throws when down).
  async healthz() {
    const res = await request(this.port, 'GET', '/healthz');
    if (res.status !== 200) throw Object.assign(new Error(`healthz ${res.status}`), { status: res.status });
    return JSON.parse(res.body.toString());
  }

  // A request to the admin listener, with the token: {status, headers, body, json}.
  async admin(method, target, body) {
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await request(this.adminPort, method, target,
      { body: body === undefined ? undefined : JSON.stringify(body), headers });
    let json;
    try { json = JSON.parse(res.body.toString()); } catch { json = undefined; }
    return { ...res, json };
  }

  // POST /api/v1/drain: /healthz turns 503, new clients are refused, and after [server]
  // drain_delay every client is closed with 1012 and a retry hint; the process stays up.
  async drain() {
    const res = await this.admin('POST', '/api/v1/drain', {});
    if (res.status < 200 || res.status > 299) throw new Error(`${this.name}: drain ${res.status} ${res.body}`);
    return res;
  }

  // GET /metrics on the admin listener (Prometheus text); metricValue() reads it.
  async metrics() {
    const res = await this.admin('GET', '/metrics');
    if (res.status !== 200) throw new Error(`${this.name}: GET /metrics ${res.status} ${res.body}`);
    return res.body.toString();
  }

  // The open connections (GET /api/v1/connections), of one route when given.
  async connections(route) {
    const res = await this.admin('GET', '/api/v1/connections');
    if (res.status !== 200) throw new Error(`${this.name}: GET /api/v1/connections ${res.status} ${res.body}`);
    return res.json.connections.filter((c) => route === undefined || c.route === route);
  }
}

// haproxy in front of the nodes: round robin, health checks on /healthz every 500 ms (down after
// 2 failures, up after 2 successes), a stats page (CSV) and the runtime API on a unix socket.
export class Balancer {
  constructor(cluster, dir, port, statsPort) {
    this.cluster = cluster;
    this.port = port;
    this.statsPort = statsPort;
    this.socket = path.join(dir, 'haproxy.sock');
    this.config = path.join(dir, 'haproxy.cfg');
    writeFileSync(this.config, `
global
  maxconn 4096
  stats socket ${this.socket} mode 600 level admin
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
  timeout client-fin 2s
  timeout server-fin 2s
  timeout check 1s
  option http-server-close
  option redispatch
  retries 3
frontend front
  bind 127.0.0.1:${port}
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /healthz
  default-server inter 500ms fall 2 rise 2
${cluster.nodes.map((n) => `  server ${n.name} 127.0.0.1:${n.port} check`).join('\n')}
listen stats
  bind 127.0.0.1:${statsPort}
  stats enable
  stats uri /stats
  stats refresh 1s
`);
  }

  async start() {
    this.child = track(new Child('/usr/sbin/haproxy', ['-db', '-f', this.config]));
    await waitFor(async () => {
      if (!this.child.running) throw new Error(`haproxy exited: ${this.child.output}`);
      return (await this.status().catch(() => null)) !== null;
    }, 'haproxy');
    return this;
  }

  stop() { return this.child?.stop(); }
  get log() { return this.child?.output ?? ''; }
  url(route = '/mqtt') { return `ws://127.0.0.1:${this.port}${route}`; }
  get page() { return `http://127.0.0.1:${this.port}/`; }

  // { 'node-a': 'UP' | 'DOWN' | 'UP 1/2' | 'MAINT' | ..., ... } from the stats page's CSV.
  async status() {
    const res = await request(this.statsPort, 'GET', '/stats;csv');
    if (res.status !== 200) throw new Error(`haproxy stats ${res.status}`);
    const [header, ...rows] = res.body.toString().trim().split('\n');
    const cols = header.replace(/^# /, '').split(',');
    const at = (name) => cols.indexOf(name);
    const out = {};
    for (const row of rows.map((r) => r.split(','))) {
      if (row[at('pxname')] === 'nodes' && !['FRONTEND', 'BACKEND'].includes(row[at('svname')])) {
        out[row[at('svname')]] = row[at('status')];
      }
    }
    return out;
  }

  async waitForStatus(name, wanted, timeoutMs = 10000) {
    let last;
    await waitFor(async () => {
      last = await this.status();
      return last[name] === wanted;
    }, `haproxy to see ${name} ${wanted} (it says ${JSON.stringify(last)})`, timeoutMs);
  }

  // A command of haproxy's runtime API ("show stat", "set server nodes/node-a state drain", ...).
  command(line) {
    return new Promise((resolve, reject) => {
      const s = tcpConnect(this.socket);
      let out = '';
      s.on('data', (d) => { out += d; });
      s.on('end', () => resolve(out));
      s.on('error', reject);
      s.end(`${line}\n`);
    });
  }
}

export class Cluster {
  constructor(options) {
    this.options = options;
    this.brokers = {};
    this.nodes = [];
    this.lb = null;
  }

  static async start(options = {}) {
    const cluster = new Cluster(options);
    try {
      await cluster._start();
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  async _start() {
    const o = this.options;
    const prefix = o.controlPrefix ?? '$wsbridge';
    this.dir = mkdtempSync(path.join(tmpdir(), 'wsbridge-e2e-cluster-'));
    for (const name of ['A', 'B']) {
      const sub = path.join(this.dir, `broker-${name}`);
      mkdirSync(sub);
      const broker = new Broker(sub, await freePort());
      broker.name = name;
      brokerAcl(broker, prefix);
      this.brokers[name] = broker;
    }
    bridgeToA(this.brokers.B, this.brokers.A, prefix);
    for (const b of Object.values(this.brokers)) {
      await b.start();
      track(b.child);
    }
    await this.waitForBrokerBridge(prefix);
    for (const spec of o.nodes ?? DEFAULT_NODES) {
      const sub = path.join(this.dir, spec.name);
      mkdirSync(sub);
      this.nodes.push(new Node(this, spec, sub, await freePort(), await freePort()));
    }
    await Promise.all(this.nodes.map((n) => n.start()));
    if (o.haproxy !== false) {
      this.lb = new Balancer(this, this.dir, await freePort(), await freePort());
      await this.lb.start();
      for (const n of this.nodes) await this.lb.waitForStatus(n.name, 'UP');
    }
  }

  // Until a message crosses the broker bridge each way, on an ordinary topic and a control topic.
  async waitForBrokerBridge(prefix, timeoutMs = 15000) {
    const { A, B } = this.brokers;
    for (const [from, to] of [[B, A], [A, B]]) {
      for (const root of ['cluster-probe', `${prefix}/probe`]) {
        const sub = await MosquittoSub.start(to, `${root}/#`, 1);
        try {
          const deadline = Date.now() + timeoutMs;
          for (let i = 0; ; i++) {
            const topic = `${root}/${from.name}-to-${to.name}/${i}`;
            await mosquittoPub(from, topic, 'probe', { qos: 1 });
            if (await sub.waitForTopic(topic, 500).then(() => true, () => false)) break;
            if (Date.now() > deadline) {
              throw new Error(`nothing crossed the bridge ${from.name} -> ${to.name} on ${root}:\n${B.log}`);
            }
          }
        } finally {
          await sub.stop();
        }
      }
    }
  }

  node(name) {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  // { 'node-a': N, ... }: open connections of `route` per running node (the admin API).
  async connectionCounts(route = '/mqtt') {
    const out = {};
    for (const n of this.nodes) if (n.running) out[n.name] = (await n.connections(route)).length;
    return out;
  }

  // Until the running nodes hold `total` connections of `route` between them; their counts.
  async waitForConnections(total, route = '/mqtt', timeoutMs = 10000) {
    let counts;
    await waitFor(async () => {
      counts = await this.connectionCounts(route);
      return Object.values(counts).reduce((a, b) => a + b, 0) === total;
    }, `${total} connections of ${route} (there are ${JSON.stringify(counts)})`, timeoutMs);
    return counts;
  }

  // With [cluster] tables: until every running node's GET /api/v1/connections?scope=cluster is
  // answered by every running node (their control connections subscribed and seen).
  async waitForControlPlane(timeoutMs = 10000) {
    const running = this.nodes.filter((n) => n.running).map((n) => n.name).sort();
    let last;
    await waitFor(async () => {
      for (const n of this.nodes.filter((x) => x.running)) {
        last = (await n.admin('GET', '/api/v1/connections?scope=cluster')).json?.instances;
        if (JSON.stringify([...(last?.answered ?? [])].sort()) !== JSON.stringify(running)) return false;
      }
      return true;
    }, `every instance to answer for the cluster (last: ${JSON.stringify(last)})`, timeoutMs);
  }

  async stop() {
    await this.lb?.stop();
    await Promise.all(this.nodes.map((n) => n.stop()));
    for (const b of Object.values(this.brokers)) await b.stop();
    const artifacts = process.env.E2E_ARTIFACTS;
    if (artifacts) {
      mkdirSync(artifacts, { recursive: true });
      for (const n of this.nodes) writeFileSync(path.join(artifacts, `cluster.${n.name}.log`), n.log);
      for (const b of Object.values(this.brokers)) writeFileSync(path.join(artifacts, `cluster.mosquitto-${b.name}.log`), b.log);
      if (this.lb) writeFileSync(path.join(artifacts, 'cluster.haproxy.log'), this.lb.log);
    }
    if (this.dir) removeDir(this.dir);
  }
}

// A JSON-protocol client of /mqtt (docs/PROTOCOL.md) on Node's `ws`: its messages, its close.
export class JsonClient {
  static async open(url, timeoutMs = 5000) {
    const c = new JsonClient(url);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no open: ${url}`)), timeoutMs);
      c.ws.once('open', () => { clearTimeout(timer); resolve(); });
      c.ws.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
    return c;
  }

  constructor(url) {
    this.url = url;
    this.frames = [];
    this.closed = null;
    this.nextId = 0;
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      try { this.frames.push(JSON.parse(data.toString())); } catch { this.frames.push({ raw: data.toString() }); }
    });
    this.ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() }; });
    this.ws.on('error', () => {});
  }

  get messages() { return this.frames.filter((f) => f.type === 'message'); }

  // Sends a request with a fresh id and waits for its ack (rejects on an error frame).
  async request(frame, timeoutMs = 5000) {
    const id = `r${++this.nextId}`;
    this.ws.send(JSON.stringify({ ...frame, id }));
    await waitFor(() => this.frames.some((f) => f.id === id) || this.closed,
      `the answer to ${JSON.stringify(frame)} from ${this.url}`, timeoutMs);
    const answer = this.frames.find((f) => f.id === id);
    if (answer?.type !== 'ack') throw new Error(`${JSON.stringify(frame)}: ${JSON.stringify(answer ?? this.closed)}`);
    return answer;
  }

  subscribe(topic, qos = 1) { return this.request({ type: 'subscribe', topic, qos }); }

  close() {
    this.ws.close();
    return waitFor(() => this.closed !== null, 'the close', 3000).catch(() => this.ws.terminate());
  }
}
