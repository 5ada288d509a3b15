// MQTT pass-through (#17): what wsbridge enforces between mqtt.js (Node, MQTT 3.1.1 and 5) and a
// real mosquitto. Denied SUBSCRIBE filters get failure codes and never reach the broker (its log
// lists every filter it subscribed), denied PUBLISHes and wills never reach it (mosquitto_sub on
// '#'), and the broker sees the forced client id and the service account, never the browser's
// own. Run by CTest (mqtt_passthrough.acl).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  startServers, stopServers, connectMqtt, endClient, mosquittoPub, MosquittoSub, nextMessage,
  subscribeCodes, within, sleep, token, API_KEY, SERVICE,
} from './mqtt_passthrough_support.mjs';

let servers;
before(async () => { servers = await startServers(); });
after(() => stopServers(servers, 'mqtt_passthrough_acl'));

const url = (route = '/mqtt') => servers.bridge.url(route);

// The filters the broker subscribed for wsbridge's clients: mosquitto logs "<client id> <qos>
// <filter>" (mosquitto_sub's own ids are "auto-...").
function brokerFilters() {
  return [...servers.broker.log.matchAll(/^(\S+) \d (\S+)$/gm)]
    .filter((m) => !m[1].startsWith('auto-')).map((m) => m[2]);
}

// Every publish from `client` completes (resolves) or fails (its error), in order.
async function publishAll(client, topics, qos) {
  const results = [];
  for (const topic of topics) {
    results.push(await within(client.publishAsync(topic, `to ${topic}`, { qos }).then(() => null, (e) => e),
      5000, `the publish to ${topic} to complete`));
  }
  return results;
}

for (const v of [4, 5]) {
  const refused = v === 5 ? 0x87 : 0x80;
  describe(`protocol version ${v}`, () => {
    test('denied filters get failure codes and never reach the broker; the allowed one does', async () => {
      const c = await connectMqtt(url(), { protocolVersion: v, clientId: `acl${v}` });
      try {
        const filters = {
          [`sensors/acl${v}/#`]: { qos: 1 },          // allowed
          [`secret/acl${v}/#`]: { qos: 1 },           // outside the ACL
          '#': { qos: 0 },                             // wider than allowed
          [`+/acl${v}/x`]: { qos: 0 },                 // wider than allowed, by a wildcard level
          'users/bob/#': { qos: 0 },                   // {user} is "anonymous" here
          '$SYS/#': { qos: 0 },                        // $SYS/ without a $SYS/ pattern
          [`$share/g/sensors/acl${v}/x`]: { qos: 0 },  // $share/ of an allowed topic
        };
        const codes = await within(subscribeCodes(c, filters), 5000, 'SUBACK');
        assert.deepEqual(codes, [1, ...Array(6).fill(refused)]);
        // Published in this order on one broker, so the denied one would arrive first.
        await mosquittoPub(servers.broker, `secret/acl${v}/x`, 'secret', { qos: 1 });
        await mosquittoPub(servers.broker, 'users/bob/x', 'bob\'s', { qos: 1 });
        await mosquittoPub(servers.broker, `sensors/acl${v}/x`, 'open', { qos: 1 });
        assert.equal((await nextMessage(c, `sensors/acl${v}/x`)).payload.toString(), 'open');
        assert.deepEqual(c.received.map((m) => m.topic), [`sensors/acl${v}/x`]);
        const reached = brokerFilters();
        assert.ok(reached.includes(`sensors/acl${v}/#`), `the broker subscribed ${reached}`);
        for (const denied of Object.keys(filters).slice(1)) {
          assert.ok(!reached.includes(denied), `${denied} reached the broker`);
        }
      } finally {
        await endClient(c);
      }
    });
  });
}

// SUBSCRIBE is checked on the way in, but a persistent session keeps at the broker what an
// earlier connection subscribed: here on /mqtt, then resumed on /mqtt-narrow (the same client
// id namespace), whose ACL allows sensors/# only. Before, the broker's messages on retained/...
// reached the client there. Now they are dropped, and acknowledged to the broker: back on /mqtt
// none of them is delivered again.
describe('persistent sessions', () => {
  for (const v of [4, 5]) {
    test(`v${v}: a session resumed under a narrower ACL gets only what that ACL allows`, async () => {
      const options = {
        protocolVersion: v, clientId: `keep${v}`, clean: false,
        ...(v === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
      };
      const wide = await connectMqtt(url(), options);
      try {
        const codes = await within(subscribeCodes(wide, {
          [`retained/keep${v}/#`]: { qos: 2 }, [`sensors/keep${v}/#`]: { qos: 1 },
        }), 5000, 'SUBACK');
        assert.deepEqual(codes, [2, 1]);
      } finally {
        await endClient(wide);
      }
      const narrow = await connectMqtt(url('/mqtt-narrow'), options);
      try {
        assert.equal(narrow.connack.sessionPresent, true, 'the session was not kept');
        // More QoS 2 ones than mosquitto keeps in flight (20): each must be given back (an MQTT 5
        // PUBREC 0x87 never was, and then nothing at QoS 1 or 2 reached the client).
        const denied = [0, 1, ...Array(25).fill(2)];
        await Promise.all(denied.map((qos, i) => mosquittoPub(servers.broker, `retained/keep${v}/q${i}`,
          'not for this route', { qos })));
        for (const qos of [1, 2]) {
          await mosquittoPub(servers.broker, `sensors/keep${v}/q${qos}`, 'open', { qos });
          assert.equal((await nextMessage(narrow, `sensors/keep${v}/q${qos}`)).payload.toString(), 'open');
        }
        assert.deepEqual(narrow.received.map((m) => m.topic), [`sensors/keep${v}/q1`, `sensors/keep${v}/q2`]);
      } finally {
        await endClient(narrow);
      }
      const again = await connectMqtt(url(), options);
      try {
        await mosquittoPub(servers.broker, `sensors/keep${v}/y`, 'after', { qos: 1 });
        await nextMessage(again, `sensors/keep${v}/y`);
        assert.deepEqual(again.received.map((m) => m.topic), [`sensors/keep${v}/y`],
          'the broker delivered again what was dropped');
      } finally {
        await endClient(again);
      }
    });
  }
});

// An MQTT 3.1.1 broker cannot be told the route's max_packet_bytes (4 MiB here). A message over
// it closed the connection (1011), and a persistent session got it again at every reconnect:
// nothing behind it ever arrived. It is skipped now, and acknowledged.
test('v4: a message over max_packet_bytes is skipped; the session and what follows carry on', { timeout: 30000 }, async () => {
  const options = { protocolVersion: 4, clientId: 'big4', clean: false };
  const c = await connectMqtt(url(), options);
  try {
    assert.deepEqual(await within(subscribeCodes(c, { 'sensors/big4/#': { qos: 1 } }), 5000, 'SUBACK'), [1]);
    const file = path.join(servers.dir, 'big4.bin');
    writeFileSync(file, Buffer.alloc(4.5 * 1024 * 1024, 0x61));
    await mosquittoPub(servers.broker, 'sensors/big4/large', { file }, { qos: 1 });
    await mosquittoPub(servers.broker, 'sensors/big4/small', 'after', { qos: 1 });
    assert.equal((await nextMessage(c, 'sensors/big4/small')).payload.toString(), 'after');
    assert.deepEqual(c.received.map((m) => m.topic), ['sensors/big4/small']);
    assert.ok(c.connected, 'the connection was closed');
  } finally {
    await endClient(c);
  }
  // Acknowledged: the broker does not send it again.
  const again = await connectMqtt(url(), options);
  try {
    await mosquittoPub(servers.broker, 'sensors/big4/next', 'next', { qos: 1 });
    await nextMessage(again, 'sensors/big4/next');
    assert.deepEqual(again.received.map((m) => m.topic), ['sensors/big4/next']);
  } finally {
    await endClient(again);
  }
});

describe('denied publishes', () => {
  let sub;
  before(async () => { sub = await MosquittoSub.start(servers.broker, '#'); });
  after(() => sub.stop());
  const secretSeen = () => sub.messages.filter((m) => m.topic.startsWith('secret/'));

  test('MQTT 5: PUBACK / PUBREC 0x87, the connection stays, nothing reaches the broker', async () => {
    const c = await connectMqtt(url(), { protocolVersion: 5, clientId: 'deny5' });
    try {
      const errors = await publishAll(c, ['secret/p5/q1', 'users/bob/out/p5'], 1);
      errors.push(...await publishAll(c, ['secret/p5/q2'], 2));
      assert.deepEqual(errors.map((e) => e?.code), [0x87, 0x87, 0x87]);
      await publishAll(c, ['sensors/p5/after'], 1);
      await sub.waitForTopic('sensors/p5/after');
      assert.deepEqual(secretSeen(), []);
      assert.ok(!sub.messages.some((m) => m.topic === 'users/bob/out/p5'));
      assert.ok(c.connected);
    } finally {
      await endClient(c);
    }
  });

  test('MQTT 5 on a "disconnect" route: still PUBACK 0x87', async () => {
    const c = await connectMqtt(url('/mqtt-strict'), { protocolVersion: 5, clientId: 'deny5s' });
    try {
      assert.deepEqual((await publishAll(c, ['secret/p5s'], 1)).map((e) => e?.code), [0x87]);
      assert.ok(c.connected);
    } finally {
      await endClient(c);
    }
  });

  test('MQTT 3.1.1, denied_publish = "drop": acknowledged, never at the broker', async () => {
    const c = await connectMqtt(url(), { protocolVersion: 4, clientId: 'deny4' });
    try {
      for (const qos of [0, 1, 2]) {
        assert.deepEqual(await publishAll(c, [`secret/p4/q${qos}`], qos), [null], `QoS ${qos}`);
      }
      await publishAll(c, ['sensors/p4/after'], 1);
      await sub.waitForTopic('sensors/p4/after');
      assert.deepEqual(secretSeen().filter((m) => m.topic.startsWith('secret/p4/')), []);
      assert.ok(c.connected);
    } finally {
      await endClient(c);
    }
  });

  test('MQTT 3.1.1, denied_publish = "disconnect": the client is closed', async () => {
    const c = await connectMqtt(url('/mqtt-strict'), { protocolVersion: 4, clientId: 'deny4s' });
    try {
      const closed = new Promise((resolve) => c.once('close', resolve));
      c.publish('secret/p4s', 'x', { qos: 1 });
      await within(closed, 5000, 'the close');
      await mosquittoPub(servers.broker, 'sensors/p4s/after', 'marker', { qos: 1 });
      await sub.waitForTopic('sensors/p4s/after');
      assert.ok(!sub.messages.some((m) => m.topic === 'secret/p4s'));
    } finally {
      await endClient(c);
    }
  });
});

describe('wills', () => {
  for (const v of [4, 5]) {
    test(`v${v}: a will outside allow_publish is never published`, async () => {
      const sub = await MosquittoSub.start(servers.broker, '#');
      const will = (topic) => ({ topic, payload: 'gone', qos: 1, retain: false });
      try {
        // wsbridge may refuse such a CONNECT or strip its will: either way, nothing on secret/.
        const denied = await connectMqtt(url(), { protocolVersion: v, clientId: `wdeny${v}`, will: will(`secret/will${v}`) })
          .catch((e) => e.client);
        denied.sockets[0]?.terminate();
        await sleep(300);
        const allowed = await connectMqtt(url(), { protocolVersion: v, clientId: `wok${v}`, will: will(`wills/acl${v}`) });
        allowed.sockets[0].terminate();
        await sub.waitForTopic(`wills/acl${v}`);
        assert.ok(!sub.messages.some((m) => m.topic === `secret/will${v}`), 'the denied will was published');
        await Promise.all([endClient(denied), endClient(allowed)]);
      } finally {
        await sub.stop();
      }
    });
  }
});

describe('identity at the broker', () => {
  const asAlice = { access_token: token('alice') };
  const withQuery = (route, q) => `${url(route)}?${new URLSearchParams(q)}`;
  const connectedAs = (id) => new RegExp(`New client connected from \\S+ as ${id} \\((p\\d, c\\d, k\\d+), u'([^']*)'\\)`);

  test('client "dash1" of alice reaches the broker as alice:dash1, with the service account', async () => {
    // The browser's own username/password are not the broker's: mosquitto would refuse them.
    const c = await connectMqtt(withQuery('/mqtt', asAlice), {
      protocolVersion: 5, clientId: 'dash1', username: 'mallory', password: 'not-a-broker-password',
    });
    try {
      const m = servers.broker.log.match(connectedAs('alice:dash1'));
      assert.ok(m, 'no "alice:dash1" in the broker log');
      assert.equal(m[2], SERVICE.user);
      assert.ok(!servers.broker.log.includes('mallory'));
      // {user} in the ACL is alice.
      const codes = await within(subscribeCodes(c, { 'users/alice/#': { qos: 1 }, 'users/bob/#': { qos: 1 } }),
        5000, 'SUBACK');
      assert.deepEqual(codes, [1, 0x87]);
    } finally {
      await endClient(c);
    }
  });

  test('an anonymous client is put in the "anonymous" namespace', async () => {
    const c = await connectMqtt(url(), { protocolVersion: 4, clientId: 'dash1' });
    try {
      assert.match(servers.broker.log, connectedAs('anonymous:dash1'));
    } finally {
      await endClient(c);
    }
  });

  test('a second alice:dash1 (API key) takes over the first; bob\'s dash1 is another client', async () => {
    const first = await connectMqtt(withQuery('/mqtt', asAlice), { protocolVersion: 4, clientId: 'dash1' });
    const firstClosed = new Promise((resolve) => first.once('close', resolve));
    let bob;
    let second;
    try {
      bob = await connectMqtt(withQuery('/mqtt', { access_token: token('bob') }), { protocolVersion: 4, clientId: 'dash1' });
      await sleep(500);
      assert.ok(first.connected, 'bob\'s dash1 closed alice\'s');
      second = await connectMqtt(url(), {
        protocolVersion: 4, clientId: 'dash1', wsOptions: { headers: { Authorization: `Bearer ${API_KEY}` } },
      });
      await within(firstClosed, 5000, 'the broker to close the first alice:dash1');
      assert.ok(second.connected && bob.connected);
    } finally {
      await Promise.all([endClient(first), endClient(bob), endClient(second)]);
    }
  });

  // {user}:{client_id} filled in as it came made user "bob" with client "phone:x" the broker's
  // client "bob:phone:x", which is user "bob:phone"'s "x": bob took over that user's session.
  // And any anonymous client could take over a user really named "anonymous", or a token with
  // no "sub".
  test('no client id a user chooses reaches another user\'s session', async () => {
    const anonymous = { signed: false, id: 'x', broker: 'anonymous:x' };
    const cases = [
      [{ user: 'bob:phone', id: 'x', broker: 'bob%3Aphone:x' }, { user: 'bob', id: 'phone:x', broker: 'bob:phone:x' }],
      [{ user: 'anonymous', id: 'x', broker: '%61nonymous:x' }, anonymous],
      [{ user: undefined, id: 'x', broker: '%authenticated:x' }, anonymous],  // a token without "sub"
    ];
    for (const [victimAs, attackerAs] of cases) {
      const open = ({ user, id, signed = true }) => connectMqtt(
        signed ? withQuery('/mqtt', { access_token: token(user) }) : url(), { protocolVersion: 4, clientId: id });
      const victim = await open(victimAs);
      const victimClosed = new Promise((resolve) => victim.once('close', resolve));
      let attacker;
      try {
        attacker = await open(attackerAs);
        assert.match(servers.broker.log, connectedAs(victimAs.broker));
        assert.match(servers.broker.log, connectedAs(attackerAs.broker));
        const closed = await Promise.race([victimClosed.then(() => true), sleep(700).then(() => false)]);
        assert.equal(closed, false, `${JSON.stringify(attackerAs)} took over ${JSON.stringify(victimAs)}'s session`);
      } finally {
        await Promise.all([endClient(victim), endClient(attacker)]);
      }
    }
  });
});
