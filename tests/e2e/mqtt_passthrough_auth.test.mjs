// MQTT pass-through (#17) with mqtt.js in Node: authentication at the upgrade and in CONNECT's
// password, token expiry, the publish rate limit, and a broker restart the client rides out by
// itself. Run by CTest (mqtt_passthrough.auth). The restart comes last: it takes the broker away
// from every other test of this file.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServers, stopServers, connectMqtt, endClient, mosquittoPub, nextMessage, within, waitFor,
  token, API_KEY, rawMqtt, publishPacket, disconnectReason,
} from './mqtt_passthrough_support.mjs';

let servers;
before(async () => { servers = await startServers(); });
after(() => stopServers(servers, 'mqtt_passthrough_auth'));

const url = (route) => servers.bridge.url(route);
const failure = (promise) => promise.then((c) => { endClient(c); return null; }, (e) => e);

describe('authentication', () => {
  test('a required route refuses an upgrade without credentials (401) and takes one with a token', async () => {
    const err = await failure(connectMqtt(url('/mqtt-auth'), { protocolVersion: 5, clientId: 'noauth' }));
    assert.ok(err, 'connected without credentials');
    assert.match(err.client.sockets[0]?.lastError?.message ?? '', /\b401\b/, err.message);
    const c = await connectMqtt(`${url('/mqtt-auth')}?access_token=${token('alice')}`,
      { protocolVersion: 5, clientId: 'withauth' });
    await endClient(c);
  });

  for (const v of [4, 5]) {
    test(`v${v}: a JWT or an API key in CONNECT's password admits the client as its user`, async () => {
      for (const [name, password] of [['jwt', token('alice')], ['key', API_KEY]]) {
        const c = await connectMqtt(url('/mqtt-connect'), {
          protocolVersion: v, clientId: `${name}${v}`, username: 'alice', password,
        });
        try {
          // Its user's namespace at the broker, and its user's ACL.
          assert.match(servers.broker.log, new RegExp(`connected from \\S+ as alice:${name}${v} `));
          await within(c.subscribeAsync('users/alice/#', { qos: 1 }), 5000, 'SUBACK');
        } finally {
          await endClient(c);
        }
      }
    });

    test(`v${v}: a bad or missing CONNECT password is refused with ${v === 5 ? '0x86' : '4'}`, async () => {
      const expected = v === 5 ? 0x86 : 4;
      for (const password of ['not-a-token', undefined]) {
        const err = await failure(connectMqtt(url('/mqtt-connect'), {
          protocolVersion: v, clientId: `bad${v}`, username: 'alice', password,
        }));
        assert.ok(err, `connected with password ${password}`);
        assert.equal(err.code, expected, `${err.message} (password ${password})`);
      }
      assert.doesNotMatch(servers.broker.log, new RegExp(`as alice:bad${v} `));
    });
  }

  test('the connection is closed when its token expires', async () => {
    const c = await connectMqtt(`${url('/mqtt-auth')}?access_token=${token('alice', 2)}`,
      { protocolVersion: 5, clientId: 'expiring' });
    try {
      const closed = new Promise((resolve) => c.once('close', resolve));
      await within(closed, 6000, 'the close at expiry');
      assert.equal(c.sockets[0].closeInfo?.code, 1008, JSON.stringify(c.sockets[0].closeInfo));
    } finally {
      await endClient(c);
    }
  });
});

describe('limits', () => {
  for (const v of [5, 4]) {
    test(`publishing faster than publish_rate: MQTT ${v === 5 ? '5 gets DISCONNECT 0x96' : '3.1.1 is closed'}, with 1008`, async () => {
      // 8 at once against a burst of 5. mqtt.js sees its connection close...
      const c = await connectMqtt(url('/mqtt-limited'), { protocolVersion: v, clientId: `fast${v}` });
      try {
        const closed = new Promise((resolve) => c.once('close', resolve));
        for (let i = 0; i < 8; i++) c.publish('sensors/fast', `m${i}`, { qos: 0 });
        await within(closed, 5000, 'the close');
      } finally {
        await endClient(c);
      }
      // ...and this is what wsbridge sent it (see rawMqtt). Exactly one over the burst: bytes
      // still arriving after wsbridge closed could reset the connection before the close frame
      // is read.
      const raw = await rawMqtt(url('/mqtt-limited'), v, `fastraw${v}`);
      for (let i = 0; i < 6; i++) raw.ws.send(publishPacket('sensors/fast', `m${i}`, v));
      const { code, reason } = await within(raw.closed, 5000, 'the close of the raw client');
      assert.equal(code, 1008);
      assert.match(reason, /publish_rate/);
      if (v === 5) assert.equal(disconnectReason(raw.frames), 0x96);
    });
  }

  test('publishing within publish_rate is not limited', async () => {
    const c = await connectMqtt(url('/mqtt-limited'), { protocolVersion: 5, clientId: 'slow5' });
    try {
      for (let i = 0; i < 5; i++) await within(c.publishAsync('sensors/slow', `m${i}`, { qos: 1 }), 5000, 'PUBACK');
      assert.ok(c.connected);
    } finally {
      await endClient(c);
    }
  });
});

describe('a broker restart', () => {
  for (const v of [5, 4]) {
    test(`v${v}: the client sees the broker go, reconnects by itself and receives again`, async () => {
      // (reconnectOnConnackError: a reconnect that lands while the broker is still down is refused
      // with CONNACK "server unavailable", after which mqtt.js stops reconnecting unless told: a
      // slow run, under ASan say, met that window.)
      const c = await connectMqtt(url('/mqtt'), {
        protocolVersion: v, clientId: `restart${v}`, reconnectPeriod: 300, reconnectOnConnackError: true,
      });
      try {
        await within(c.subscribeAsync(`sensors/restart${v}/#`, { qos: 1 }), 5000, 'SUBACK');
        const closed = new Promise((resolve) => c.once('close', resolve));
        const offline = new Promise((resolve) => c.once('offline', resolve));
        await servers.broker.stop();
        await within(Promise.all([closed, offline]), 8000, '"close" and "offline" after the broker went');
        const reconnected = new Promise((resolve) => c.once('connect', resolve));
        await servers.broker.start();
        await within(reconnected, 15000, 'mqtt.js to reconnect');
        // mqtt.js resubscribes after reconnecting; publish until one arrives.
        await waitFor(async () => {
          await mosquittoPub(servers.broker, `sensors/restart${v}/after`, 'again', { qos: 1 });
          return c.received.some((m) => m.topic === `sensors/restart${v}/after`);
        }, 'a message after the restart');
        assert.equal((await nextMessage(c, `sensors/restart${v}/after`)).payload.toString(), 'again');
      } finally {
        await endClient(c);
        if (!servers.broker.child.running) await servers.broker.start();  // for the next test
      }
    });
  }
});
