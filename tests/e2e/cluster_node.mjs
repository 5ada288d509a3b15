// One wsbridge instance of the cluster tests' harness (#19; the cluster itself is
// cluster_support.mjs): its config written from the cluster's options, its process (started,
// signalled, killed, restarted on its port), its /healthz and its admin API (drain, /metrics,
// connections). Every child process of the harness is tracked here and killed if the test process
// exits without stopping it.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Child, JWT_SECRET, freeze, sleep, sourceDir, waitFor } from './mqtt_passthrough_support.mjs';
import { request } from './fallback_support.mjs';
import { copyWsbridgeLibrary } from './wsbridge_library.mjs';
import { defaultRoutesToml } from './cluster_toml.mjs';

export const binary = process.env.WSBRIDGE_BINARY ?? path.join(sourceDir, 'build', 'release', 'wsbridge');
export const ADMIN_TOKEN = 'cluster-admin-token-0123456789';

// Every child process of this harness, killed if the test process exits without stopping them.
const live = new Set();
process.on('exit', () => { for (const c of live) { try { c.proc.kill('SIGKILL'); } catch { /* gone */ } } });
export function track(child) {
  live.add(child);
  child.exited.then(() => live.delete(child));
  return child;
}

// The binary is rebuilt from time to time: wait for it to be there rather than fail at once.
export async function waitForBinary(timeoutMs = 120000) {
  await waitFor(() => existsSync(binary), `the wsbridge binary ${binary}`, timeoutMs);
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
  // SIGSTOP, once every thread has stopped (freeze).
  freeze() { return freeze(this.child.proc); }
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
