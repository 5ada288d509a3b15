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
//
// The instances are cluster_node.mjs, haproxy cluster_balancer.mjs, their TOML cluster_toml.mjs,
// and the tests' clients (JSON, Chromium pages, /metrics) cluster_clients.mjs; everything of
// theirs is exported here too.
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  Broker, MosquittoSub, OBSERVER, SERVICE, freePort, mosquittoPub, removeDir, waitFor,
} from './mqtt_passthrough_support.mjs';
import { Node, track } from './cluster_node.mjs';
import { Balancer } from './cluster_balancer.mjs';

export { ADMIN_TOKEN, Node, binary, waitForBinary } from './cluster_node.mjs';
export { Balancer } from './cluster_balancer.mjs';
export { CLUSTER_SECRET, clusterToml, defaultRoutesToml, passthroughRouteToml } from './cluster_toml.mjs';
export {
  JsonClient, everyPageGetsWhatIsPublished, metricValue, openPage, openPages, pageState,
} from './cluster_clients.mjs';

export const DEFAULT_NODES = [
  { name: 'node-a', broker: 'A' }, { name: 'node-b', broker: 'A' }, { name: 'node-c', broker: 'B' },
];

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
