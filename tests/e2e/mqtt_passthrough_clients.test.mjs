// MQTT pass-through (#17) with mqtt.js in Node, MQTT 3.1.1 and 5, against a real mosquitto
// behind a real wsbridge: messages both ways at every QoS, retained messages, wills, 1 MiB
// payloads, the CONNACK wsbridge rewrites (keepalive clamp, no topic aliases), the refusal an
// MQTT client gets on a route that does not speak MQTT, and packets split or coalesced across
// WebSocket messages, malformed or too large. Run by CTest (mqtt_passthrough.clients).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import {
  startServers, stopServers, connectMqtt, endClient, mosquittoPub, MosquittoSub, nextMessage,
  within, waitFor, sleep, rawMqtt, publishPacket, disconnectReason,
} from './mqtt_passthrough_support.mjs';

let servers;
before(async () => { servers = await startServers(); });
after(() => stopServers(servers, 'mqtt_passthrough_clients'));

const url = (route = '/mqtt') => servers.bridge.url(route);

for (const v of [4, 5]) {
  describe(`mqtt.js, protocol version ${v}`, () => {
    test('receives mosquitto_pub messages at QoS 0, 1 and 2', async () => {
      const c = await connectMqtt(url(), { protocolVersion: v, clientId: `recv${v}` });
      try {
        await within(c.subscribeAsync(`sensors/recv${v}/#`, { qos: 2 }), 5000, 'SUBACK');
        for (const qos of [0, 1, 2]) {
          await mosquittoPub(servers.broker, `sensors/recv${v}/q${qos}`, `payload ${qos}`, { qos });
        }
        for (const qos of [0, 1, 2]) {
          const m = await nextMessage(c, `sensors/recv${v}/q${qos}`);
          assert.equal(m.payload.toString(), `payload ${qos}`);
          assert.equal(m.packet.qos, qos);
        }
      } finally {
        await endClient(c);
      }
    });

    test('publishes at QoS 0, 1 and 2 reach mosquitto_sub, and QoS 1 and 2 complete', async () => {
      const sub = await MosquittoSub.start(servers.broker, `sensors/pub${v}/#`);
      const c = await connectMqtt(url(), { protocolVersion: v, clientId: `pub${v}` });
      try {
        for (const qos of [0, 1, 2]) {
          // QoS 1 resolves on PUBACK, QoS 2 on PUBCOMP (after PUBREC and PUBREL went through).
          await within(c.publishAsync(`sensors/pub${v}/q${qos}`, `up ${qos}`, { qos }), 5000,
            `the QoS ${qos} publish to complete`);
        }
        for (const qos of [0, 1, 2]) {
          const m = await sub.waitForTopic(`sensors/pub${v}/q${qos}`);
          assert.equal(m.payload.toString(), `up ${qos}`);
          assert.equal(m.qos, qos);
        }
      } finally {
        await endClient(c);
        await sub.stop();
      }
    });

    test('a retained message is delivered on subscribe', async () => {
      await mosquittoPub(servers.broker, `retained/v${v}/state`, 'kept', { qos: 1, retain: true });
      const c = await connectMqtt(url(), { protocolVersion: v, clientId: `ret${v}` });
      try {
        await within(c.subscribeAsync(`retained/v${v}/#`, { qos: 1 }), 5000, 'SUBACK');
        const m = await nextMessage(c, `retained/v${v}/state`);
        assert.equal(m.payload.toString(), 'kept');
        assert.equal(m.packet.retain, true);
      } finally {
        await endClient(c);
      }
    });

    test('the will is published when the socket dies, not after a clean DISCONNECT', async () => {
      const sub = await MosquittoSub.start(servers.broker, `wills/v${v}/#`);
      const will = (name) => ({ topic: `wills/v${v}/${name}`, payload: `${name} gone`, qos: 1, retain: false });
      const clean = await connectMqtt(url(), { protocolVersion: v, clientId: `wclean${v}`, will: will('clean') });
      const cut = await connectMqtt(url(), { protocolVersion: v, clientId: `wcut${v}`, will: will('cut') });
      try {
        await clean.endAsync();  // DISCONNECT: the broker discards the will
        await sleep(300);
        cut.sockets[0].terminate();  // the TCP connection under the WebSocket is cut: no DISCONNECT
        const m = await sub.waitForTopic(`wills/v${v}/cut`);
        assert.equal(m.payload.toString(), 'cut gone');
        assert.ok(!sub.messages.some((x) => x.topic === `wills/v${v}/clean`), 'the clean client\'s will was published');
      } finally {
        await endClient(cut);
        await sub.stop();
      }
    });

    test('a 1 MiB payload goes both ways', async () => {
      const payload = randomBytes(1024 * 1024);
      const file = path.join(servers.dir, `big${v}.bin`);
      writeFileSync(file, payload);
      const sub = await MosquittoSub.start(servers.broker, `sensors/bigup${v}`, 1);
      const c = await connectMqtt(url(), { protocolVersion: v, clientId: `big${v}` });
      try {
        await within(c.subscribeAsync(`sensors/bigdown${v}`, { qos: 1 }), 5000, 'SUBACK');
        await mosquittoPub(servers.broker, `sensors/bigdown${v}`, { file }, { qos: 1 });
        const down = await nextMessage(c, `sensors/bigdown${v}`, 15000);
        assert.ok(down.payload.equals(payload), `received ${down.payload.length} bytes, not the same`);
        await within(c.publishAsync(`sensors/bigup${v}`, payload, { qos: 1 }), 10000, 'PUBACK of 1 MiB');
        const up = await sub.waitForTopic(`sensors/bigup${v}`, 15000);
        assert.ok(up.payload.equals(payload), `mosquitto_sub got ${up.payload.length} bytes, not the same`);
      } finally {
        await endClient(c);
        await sub.stop();
      }
    });

    test('a route that does not speak MQTT refuses the client, naming /mqtt', async () => {
      const err = await connectMqtt(url('/echo'), { protocolVersion: v, clientId: `echo${v}` }).then(
        (c) => { endClient(c); return null; }, (e) => e);
      assert.ok(err, 'connected to /echo');
      const { client } = err;
      const connack = client.packets.find((p) => p.cmd === 'connack');
      assert.ok(connack, `no CONNACK: ${err.message}`);
      assert.notEqual(v === 5 ? connack.reasonCode : connack.returnCode, 0);
      // MQTT 5: the CONNACK's Reason String; both: the WebSocket close reason that follows.
      if (v === 5) assert.match(connack.properties?.reasonString ?? '', /\/mqtt\b/);
      // The close reason that follows, as wsbridge sends it (see rawMqtt).
      const raw = await rawMqtt(url('/echo'), v, `echoraw${v}`);
      const closed = await within(raw.closed, 8000, 'the WebSocket close');
      assert.match(closed.reason, /\/mqtt\b/);
      assert.equal(raw.frames[0][0], 0x20, 'a CONNACK first');
    });
  });
}

test('the keepalive the broker sees is clamped into [keepalive_min, keepalive_max]', async () => {
  // mosquitto logs each client's keepalive ("k60"); 0 (never) becomes the max.
  for (const v of [4, 5]) {
    for (const [asked, clamped] of [[1, 5], [60, 60], [1000, 300], [0, 300]]) {
      const c = await connectMqtt(url(), { protocolVersion: v, clientId: `ka${v}-${asked}`, keepalive: asked });
      await endClient(c);
      assert.match(servers.broker.log,
        new RegExp(`connected from \\S+ as anonymous:ka${v}-${asked} \\(p\\d, c\\d, k${clamped}\\b`), `v${v}, keepalive ${asked}`);
    }
  }
});

describe('the CONNACK an MQTT 5 client gets', () => {
  test('Server Keep Alive tells a client that asked for more than keepalive_max', async () => {
    const c = await connectMqtt(url(), { protocolVersion: 5, clientId: 'ka-told', keepalive: 1000 });
    try {
      assert.equal(c.connack.properties?.serverKeepAlive, 300);
    } finally {
      await endClient(c);
    }
  });

  test('topic aliases are disabled: no Topic Alias Maximum, and a PUBLISH using one is refused with 0x94', async () => {
    const c = await connectMqtt(url(), { protocolVersion: 5, clientId: 'alias' });
    try {
      // mosquitto announces topic_alias_maximum 10; wsbridge removes it.
      assert.equal(c.connack.properties?.topicAliasMaximum, undefined);
      // mqtt.js will not send an alias it was not granted: the packet is written by hand.
      // PUBLISH QoS 0, topic "sensors/alias", properties { Topic Alias (0x23) = 1 }, payload "x".
      const topic = Buffer.from('sensors/alias');
      const body = Buffer.concat([Buffer.from([0, topic.length]), topic, Buffer.from([3, 0x23, 0, 1]),
        Buffer.from('x')]);
      const closed = new Promise((resolve) => c.once('close', resolve));
      const aliased = Buffer.concat([Buffer.from([0x30, body.length]), body]);
      c.sockets[0].send(aliased);
      await within(closed, 5000, 'the connection to close');
      // What wsbridge sent (see rawMqtt): DISCONNECT 0x94.
      const raw = await rawMqtt(url(), 5, 'aliasraw');
      raw.ws.send(aliased);
      await within(raw.closed, 5000, 'the close of the raw client');
      assert.equal(disconnectReason(raw.frames), 0x94);
    } finally {
      await endClient(c);
    }
  });
});

describe('the stream of packets', () => {
  // (mqtt.js in Node already splits each packet over several WebSocket messages, one per field.)
  test('several packets in one WebSocket message, and one packet over three', async () => {
    const sub = await MosquittoSub.start(servers.broker, 'sensors/frames/#');
    const c = await connectMqtt(url(), { protocolVersion: 5, clientId: 'frames' });
    try {
      const ws = c.sockets[0];
      ws.send(Buffer.concat(['a', 'b', 'c'].map((n) => publishPacket(`sensors/frames/${n}`, n, 5))));
      const split = publishPacket('sensors/frames/split', 'split', 5);
      for (const part of [split.subarray(0, 1), split.subarray(1, 9), split.subarray(9)]) ws.send(part);
      for (const n of ['a', 'b', 'c', 'split']) {
        assert.equal((await sub.waitForTopic(`sensors/frames/${n}`)).payload.toString(), n);
      }
    } finally {
      await endClient(c);
      await sub.stop();
    }
  });

  for (const v of [4, 5]) {
    test(`v${v}: a malformed packet closes the connection with a reason`, async () => {
      const c = await connectMqtt(url(), { protocolVersion: v, clientId: `bad${v}` });
      try {
        const closed = new Promise((resolve) => c.once('close', resolve));
        c.sockets[0].send(Buffer.from([0x00, 0x00]));  // packet type 0 is reserved
        await within(closed, 5000, 'the close');
        await waitFor(() => c.sockets[0].closeInfo, 'the WebSocket close');
        const disconnect = c.packets.find((p) => p.cmd === 'disconnect');
        if (v === 5 && disconnect) assert.ok(disconnect.reasonCode >= 0x80, JSON.stringify(disconnect));
        assert.notEqual(c.sockets[0].closeInfo.reason, '', JSON.stringify(c.sockets[0].closeInfo));
      } finally {
        await endClient(c);
      }
    });

    test(`v${v}: a packet over max_packet_bytes (4 MiB) closes the connection${v === 5 ? ' with 0x95' : ''}`, async () => {
      const sub = await MosquittoSub.start(servers.broker, `sensors/huge${v}`);
      const c = await connectMqtt(url(), { protocolVersion: v, clientId: `huge${v}` });
      try {
        const closed = new Promise((resolve) => c.once('close', resolve));
        const huge = Buffer.alloc(4.5 * 1024 * 1024, 1);
        c.publish(`sensors/huge${v}`, huge, { qos: 0 });
        await within(closed, 8000, 'the close');
        // What wsbridge sent (see rawMqtt): MQTT 5's DISCONNECT 0x95, then close 1009. The
        // header alone is enough for wsbridge to refuse the packet (and nothing then arrives
        // after its close to reset the connection before the close frame is read).
        const raw = await rawMqtt(url(), v, `hugeraw${v}`);
        raw.ws.send(publishPacket(`sensors/huge${v}`, huge, v).subarray(0, 64));
        const code = await within(raw.closed, 8000, 'the close of the raw client');
        assert.equal(code.code, 1009, JSON.stringify(code));
        if (v === 5) assert.equal(disconnectReason(raw.frames), 0x95);
        await mosquittoPub(servers.broker, `sensors/huge${v}`, 'marker');
        assert.equal((await sub.waitForTopic(`sensors/huge${v}`)).payload.toString(), 'marker');
      } finally {
        await endClient(c);
        await sub.stop();
      }
    });
  }
});

describe('how a session ends', () => {
  // Two connections with one client id (mqtt.js in two tabs): mosquitto 2.0.11 drops the first
  // (without the DISCONNECT 0x8E it means to send). The first is told its session was taken over,
  // once, and closed with 1000; it got DISCONNECT 0x8B (server shutting down) and close 1001, and a
  // broker failure was counted.
  test('v5: a session taken over is told so with one DISCONNECT 0x8E, and close 1000', async () => {
    const first = await rawMqtt(url(), 5, 'tab');
    const second = await rawMqtt(url(), 5, 'tab');
    try {
      const closed = await within(first.closed, 5000, 'the close of the first tab');
      assert.equal(closed.code, 1000, JSON.stringify(closed));
      const disconnects = first.frames.filter((f) => f[0] === 0xe0);
      assert.equal(disconnects.length, 1, 'one DISCONNECT, nothing after it');
      assert.equal(disconnectReason(first.frames), 0x8e);
      assert.equal(second.frames[0][0], 0x20, 'the second tab has its CONNACK');
    } finally {
      second.ws.terminate();
    }
  });

  // CONNECT (with a will), PUBLISH QoS 1, PUBLISH QoS 0 and DISCONNECT in one WebSocket message:
  // every packet reaches the broker and the will is not published. wsbridge closed its broker
  // socket right after writing the DISCONNECT; the broker's CONNACK and PUBACK then met a closed
  // socket (a reset), mosquitto's write failed and it dropped the client before reading on: the
  // QoS 0 publish was lost and the will published, in about four runs of five.
  for (const v of [4, 5]) {
    test(`v${v}: packets sent right before a DISCONNECT all reach the broker, and the will is not published`, async () => {
      const published = await MosquittoSub.start(servers.broker, `sensors/pipelined${v}/#`);
      const wills = await MosquittoSub.start(servers.broker, `wills/pipelined${v}/#`);
      const str = (text) => { const b = Buffer.from(text); return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]); };
      const packet = (first, body) => Buffer.concat([Buffer.from([first, body.length]), body]);
      const props = Buffer.from(v === 5 ? [0] : []);
      const sockets = [];
      try {
        for (let run = 0; run < 5; run++) {
          // CONNECT: clean start + will (QoS 0), keepalive 60; id, (will properties,) will topic, message.
          const connect = packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([v, 0x06, 0, 60]), props,
            str(`pipelined${v}-${run}`), props, str(`wills/pipelined${v}/${run}`), str('must not be published')]));
          const qos1 = packet(0x32, Buffer.concat([str(`sensors/pipelined${v}/${run}/one`), Buffer.from([0, 1]), props, Buffer.from('1')]));
          const qos0 = packet(0x30, Buffer.concat([str(`sensors/pipelined${v}/${run}/two`), props, Buffer.from('2')]));
          const ws = new WebSocket(url(), ['mqtt']);
          sockets.push(ws);
          await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'the upgrade');
          ws.send(Buffer.concat([connect, qos1, qos0, Buffer.from([0xe0, 0])]));
          await published.waitForTopic(`sensors/pipelined${v}/${run}/one`);
          await published.waitForTopic(`sensors/pipelined${v}/${run}/two`);
        }
        await sleep(500);
        assert.deepEqual(wills.messages.map((m) => m.topic), [], 'no will published');
      } finally {
        for (const ws of sockets) ws.terminate();
        await published.stop();
        await wills.stop();
      }
    });
  }

  // A 3.1.1 client with keepalive 1 s that goes silent while its WebSocket still answers pings:
  // closed (1001) after 1.5 keepalives, and the broker, told nothing, publishes its will. It
  // stayed open for good: wsbridge pinged the broker on its behalf.
  test('v4: a client silent for 1.5 times its keepalive is closed and its will published', async () => {
    const sub = await MosquittoSub.start(servers.broker, 'wills/silent');
    const str = (text) => { const b = Buffer.from(text); return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]); };
    // CONNECT: "MQTT" level 4, clean session + will (QoS 0), keepalive 1 s; id, will topic, message.
    const body = Buffer.concat([str('MQTT'), Buffer.from([4, 0x06, 0, 1]), str('silent'),
      str('wills/silent'), str('silent gone')]);
    const ws = new WebSocket(url(), ['mqtt']);
    const frames = [];
    ws.on('message', (data) => frames.push(Buffer.from(data)));
    const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    try {
      await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'the upgrade');
      ws.send(Buffer.concat([Buffer.from([0x10, body.length]), body]));
      await waitFor(() => frames.length > 0, 'the CONNACK', 5000);
      assert.equal(await within(closed, 6000, 'the close of the silent client'), 1001);
      assert.equal((await sub.waitForTopic('wills/silent')).payload.toString(), 'silent gone');
    } finally {
      ws.terminate();
      await sub.stop();
    }
  });
});
