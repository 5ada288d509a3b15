// A transparent TCP relay between a WebSocket client we did not write (Node ws, wscat, Chromium)
// and wsbridge that reads the frame headers going each way: which frames had RSV1 set is only
// visible on the wire, and these clients do not expose it. Bytes are forwarded unchanged.
import { createServer, connect } from 'node:net';

// Splits one direction of a connection: the HTTP head, then frame headers (payloads skipped).
class Direction {
  constructor(onHead, onFrame) {
    this.onHead = onHead;
    this.onFrame = onFrame;
    this.inHead = true;
    this.buf = Buffer.alloc(0);
    this.skip = 0;
    this.continuing = false;  // inside a fragmented message
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (this.inHead) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.onHead(this.buf.subarray(0, end).toString('latin1'));
      this.inHead = false;
      this.buf = this.buf.subarray(end + 4);
    }
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.buf.length);
        this.skip -= n;
        this.buf = this.buf.subarray(n);
        if (this.skip > 0) return;
      }
      if (this.buf.length < 2) return;
      const b0 = this.buf[0];
      const b1 = this.buf[1];
      let length = b1 & 0x7f;
      let at = 2;
      if (length === 126) {
        if (this.buf.length < 4) return;
        length = this.buf.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (this.buf.length < 10) return;
        length = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (b1 & 0x80) at += 4;  // masking key
      if (this.buf.length < at) return;
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      // A message's first frame (text/binary) carries its RSV1; continuations must not.
      this.onFrame({ opcode, fin, rsv1: (b0 & 0x40) !== 0, length, first: opcode === 1 || opcode === 2 });
      this.buf = this.buf.subarray(at);
      this.skip = length;
    }
  }
}

// Listens on a free loopback port and relays to targetPort. `connections` holds, per accepted
// connection: the request and response heads and the frames each way
// ({opcode, fin, rsv1, length, first}); control frames included.
// The checks of a client script: each failure is printed and counted (the script's exit status).
export const failures = [];
export function check(ok, what) {
  if (!ok) {
    failures.push(what);
    console.log('FAIL:', what);
  }
  return ok;
}

export function startSniffer(targetPort) {
  const connections = [];
  const sockets = new Set();
  const server = createServer((client) => {
    const record = { request: '', response: '', toServer: [], toClient: [] };
    connections.push(record);
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const up = new Direction((h) => { record.request = h; }, (f) => record.toServer.push(f));
    const down = new Direction((h) => { record.response = h; }, (f) => record.toClient.push(f));
    // Flow control: a slow reader on one side pauses the other.
    client.on('data', (d) => { up.push(d); if (!upstream.write(d)) client.pause(); });
    upstream.on('data', (d) => { down.push(d); if (!client.write(d)) upstream.pause(); });
    client.on('drain', () => upstream.resume());
    upstream.on('drain', () => client.resume());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => { upstream.destroy(); sockets.delete(client); });
    upstream.on('close', () => { client.destroy(); sockets.delete(upstream); });
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: server.address().port,
        connections,
        close: () => {
          for (const s of sockets) s.destroy();
          return new Promise((r) => server.close(r));
        },
      });
    });
  });
}

// The Sec-WebSocket-Extensions values of an HTTP head, joined as one header ('' when absent).
export function extensionsHeader(head) {
  return head.split('\r\n')
    .filter((line) => /^sec-websocket-extensions:/i.test(line))
    .map((line) => line.slice(line.indexOf(':') + 1).trim())
    .join(', ');
}

// "permessage-deflate; a; b=1" -> {name, params: Map}; throws on repeated params.
export function parseExtension(value) {
  const [name, ...rest] = value.split(';').map((s) => s.trim()).filter((s) => s !== '');
  const params = new Map();
  for (const p of rest) {
    const eq = p.indexOf('=');
    const key = eq < 0 ? p : p.slice(0, eq).trim();
    if (params.has(key)) throw new Error(`repeated parameter ${key} in ${value}`);
    params.set(key, eq < 0 ? null : p.slice(eq + 1).trim().replace(/^"|"$/g, ''));
  }
  return { name, params };
}

// The contract's response (docs: issue #20): permessage-deflate with server_no_context_takeover
// and client_no_context_takeover, plus server_max_window_bits=N when given; nothing else.
export function checkContractResponse(header, serverMaxWindowBits = null) {
  if (header.includes(',')) throw new Error(`more than one extension accepted: ${header}`);
  const { name, params } = parseExtension(header);
  const want = new Map([['server_no_context_takeover', null], ['client_no_context_takeover', null]]);
  if (serverMaxWindowBits !== null) want.set('server_max_window_bits', String(serverMaxWindowBits));
  const same = name === 'permessage-deflate' && params.size === want.size &&
    [...want].every(([k, v]) => params.has(k) && params.get(k) === v);
  if (!same) {
    throw new Error(`Sec-WebSocket-Extensions: ${header}; expected permessage-deflate; ` +
      [...want].map(([k, v]) => (v === null ? k : `${k}=${v}`)).join('; '));
  }
}
