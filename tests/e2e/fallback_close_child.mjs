// A Node process whose only wsbridge client is closed by its parent (fallback_client_backoff.test.mjs):
//   node fallback_close_child.mjs <ws url> <sse|polling> <publish: 0|1>
// It writes JSON lines: {event: 'open'} once open, {event: 'request', afterClose, method, url,
// body} for every fetch the client makes, and {event: 'closed', at} when it closed the client,
// which it does on the first line its stdin brings. Then it should exit at once: nothing of the
// client may keep it alive (a backoff's timer, a fetch in flight).
import { connect } from '../../web/wsbridge.js';

const [url, transport, publish] = process.argv.slice(2);
let closed = false;
const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

function loggedFetch(target, init = {}) {
  const body = init.body instanceof Uint8Array ? Buffer.from(init.body).toString('latin1') : null;
  say({ event: 'request', afterClose: closed, method: init.method ?? 'GET', url: String(target), body });
  return fetch(target, init);
}

const client = connect(url, { forceTransport: transport, sessionStorage: null, fetch: loggedFetch });
client.on('error', () => {});
client.on('open', () => {
  say({ event: 'open' });
  if (publish === '1') client.publish('sensors/x', 1).catch(() => {});
});

process.stdin.once('data', () => {
  closed = true;
  client.close();
  say({ event: 'closed', at: Date.now() });
  process.stdin.destroy();
});
