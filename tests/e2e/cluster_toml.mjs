// The TOML the cluster tests give their wsbridge instances (#19; the harness is
// cluster_support.mjs): an instance's default upstream and routes, an MQTT pass-through route to
// one broker for every node, and a [cluster] table on the node's own broker.
import { AUTH_TABLES, SERVICE } from './mqtt_passthrough_support.mjs';
import { mqttRouteToml } from './fallback_support.mjs';

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
