// haproxy in front of the cluster tests' wsbridge instances (#19; the cluster itself is
// cluster_support.mjs): its config, its process, its stats page and its runtime API.
import { writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import path from 'node:path';
import { Child, waitFor } from './mqtt_passthrough_support.mjs';
import { request } from './fallback_support.mjs';
import { track } from './cluster_node.mjs';

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
