// web/wsbridge.js' fallback transports (docs/FALLBACK.md) against a real wsbridge and a real
// mosquitto: echo over each transport, the fall back from a WebSocket answered 101 and then
// silent (a proxy of the test's own), POST retries applied once, streams resumed, and the move
// back to a WebSocket (fallback_scenarios.mjs; the same scenarios run against a fake of the
// protocol in fallback_client_unit.test.mjs). Run by CTest (label fallback) with WSBRIDGE_BINARY.
import { before, after } from 'node:test';
import {
  Broker, Bridge, freePort, tempDir, removeDir,
} from './mqtt_passthrough_support.mjs';
import { defineScenarios } from './fallback_scenarios.mjs';
import { mqttRouteToml } from './fallback_support.mjs';

let dir;
let broker;
let bridge;

function config(bridgePort, brokerPort) {
  return `
[fallback]
poll_timeout = "5s"
heartbeat = "1s" # the SSE watchdog's scenarios wait for two
[[listeners]]
address = "127.0.0.1"
port = ${bridgePort}
${mqttRouteToml(brokerPort)}
[[routes]]
path = "/echo"
adapter = "echo"
max_message_bytes = "1MiB"
`;
}

before(async () => {
  dir = tempDir();
  broker = new Broker(dir, await freePort());
  await broker.start();
  const port = await freePort();
  bridge = new Bridge(dir, port, config(port, broker.port));
  await bridge.start();
});

after(async () => {
  await bridge?.stop();
  await broker?.stop();
  if (dir) removeDir(dir);
});

defineScenarios(() => ({ bridge }));
