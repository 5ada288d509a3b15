// wsbridge-frames.js: the frames of wsbridge's JSON protocol (docs/PROTOCOL.md) for WsbridgeClient
// (wsbridge.js): requests numbered and matched to their ack, response or error (with a timeout),
// and the bridge's frames dispatched: messages to the handlers whose filters match, status and
// errors as events. ClientFrames is ClientConnection's base class (wsbridge-connection.js) and
// nothing else: it uses the fields that WsbridgeClient's constructor sets, its _emit, and the
// connection's socket (`_ws`) and pong timer.

import { base64ToBytes, topicMatches } from './wsbridge-wire.js';

/** An error reported by the bridge (an error frame) or by this client (code "disconnected", ...). */
export class WsbridgeError extends Error {
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = 'WsbridgeError';
    this.code = code;
    if (details.id !== undefined) this.id = details.id;
    if (details.topic !== undefined) this.topic = details.topic;
    if (details.request !== undefined) this.request = details.request;
  }
}

export class ClientFrames {
  _newId() {
    this._nextId += 1;
    return String(this._nextId);
  }

  _send(frame) {
    this._ws.send(JSON.stringify(frame));
  }

  _request(frame, { internal = false, timeoutMs = this._options.requestTimeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      const id = this._newId();
      const pending = { resolve, reject, timer: null, internal };
      if (timeoutMs > 0) {
        pending.timer = setTimeout(() => {
          this._pending.delete(id);
          reject(new WsbridgeError('timeout', `no answer to ${frame.type} within ${timeoutMs} ms`, { id }));
        }, timeoutMs);
      }
      this._pending.set(id, pending);
      try {
        this._send({ ...frame, id });
      } catch (err) {
        this._pending.delete(id);
        clearTimeout(pending.timer);
        reject(err);
      }
    });
  }

  _settle(id, fn) {
    const p = this._pending.get(String(id));
    if (!p) return false;
    this._pending.delete(String(id));
    clearTimeout(p.timer);
    fn(p);
    return true;
  }

  _handleData(data) {
    // Any frame proves the connection alive.
    clearTimeout(this._pongTimer);
    this._pongTimer = null;

    if (typeof data !== 'string') {
      this._emit('error', new WsbridgeError('bad_frame', 'unexpected binary frame from the bridge'));
      return;
    }
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      this._emit('error', new WsbridgeError('bad_frame', 'a frame from the bridge is not JSON'));
      return;
    }
    if (frame === null || typeof frame !== 'object') return;

    switch (frame.type) {
      case 'message':
        this._handleMessage(frame);
        break;
      case 'ack':
        this._settle(frame.id, (p) => p.resolve(frame));
        break;
      case 'response':
        this._settle(frame.id, (p) => p.resolve(frame));
        break;
      case 'error': {
        const err = new WsbridgeError(frame.code || 'internal', frame.message || '', { id: frame.id });
        // An error without an id (or for a request given up on) still deserves to be seen.
        if (frame.id === undefined || !this._settle(frame.id, (p) => p.reject(err))) {
          this._emit('error', err);
        }
        break;
      }
      case 'status':
        if (frame.upstream !== undefined) this._setUpstream(frame.upstream);
        if (frame.dropped !== undefined) this._emit('status', { dropped: frame.dropped });
        break;
      case 'pong':
        break; // the frame itself cleared the pong timer
      default:
        break; // unknown types are ignored, for forward compatibility
    }
  }

  _setUpstream(upstream) {
    if (upstream === this._upstream) return;
    this._upstream = upstream;
    this._emit('status', { upstream });
  }

  _handleMessage(frame) {
    if (typeof frame.topic !== 'string') {
      this._emit('error', new WsbridgeError('bad_frame', 'a message without a topic'));
      return;
    }
    const message = {
      topic: frame.topic,
      payload: frame.payload,
      qos: frame.qos ?? 0,
      retain: Boolean(frame.retain),
    };
    if (typeof frame.payload_b64 === 'string') {
      try {
        message.payloadBytes = base64ToBytes(frame.payload_b64);
      } catch {
        this._emit('error', new WsbridgeError('bad_frame', 'invalid payload_b64 in a message'));
        return;
      }
      message.payload = message.payloadBytes;
    }
    this._emit('message', message);

    // The bridge sends a message once however many of our filters match it; each handler
    // gets it once too, even when registered for several matching filters.
    const handlers = new Set();
    for (const sub of this._subs.values()) {
      if (topicMatches(sub.filter, message.topic)) for (const h of sub.handlers) handlers.add(h);
    }
    for (const handler of handlers) {
      try {
        handler(message);
      } catch (err) {
        this._emit('error', err);
      }
    }
  }
}
