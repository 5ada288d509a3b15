// wsbridge-move.js: moving a WsbridgeSocket's fallback session onto a WebSocket (docs/FALLBACK.md,
// "Moving a session to a WebSocket"): SessionMove is one try, which WsbridgeSocket
// (wsbridge-socket.js) starts every fallbackProbeInterval and which reports to it.
//
// The server moves the session itself onto the WebSocket: the same session, its subscriptions, its
// queue and its place in the message stream. The fallback first stops starting POSTs (what the
// application sends meanwhile waits, in order) and waits for the one in flight, since a POST
// after the move would find no session. Then the upgrade `_wsb=resume&s=TOKEN&last=N` goes out.
// Its welcome (resumed, `from`: F) makes the WebSocket the carrier: the fallback is stopped
// (its `moved` and the end of its request are expected), what waited goes out on the WebSocket
// in order, and the server sends the messages from F on, in order. What the fallback delivered
// after the upgrade went out (ids N+1... up to the last it delivered) is skipped there, so the
// move is exact: nothing lost, nothing twice, in either direction (what the server's resume
// buffer no longer had is reported as a `lost` control's would be). A WebSocket that brings no
// welcome within transportTimeout, fails or is refused (404: the server no longer knows the
// session there, or a proxy's refusal) is closed and remembered as broken; the fallback carries
// on with what waited. If the session moved all the same (its welcome was lost, or came late),
// the fallback finds it gone and the socket closes (1006), as any lost session does.

const SERVICE_RESTART = 1012;

/** A WebSocket given up on: its events no longer reach anyone, and it is closed. */
export function discard(ws) {
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = () => {};
  try {
    ws.close();
  } catch {
    // never opened
  }
}

export class SessionMove {
  constructor(socket, fb) {
    this.socket = socket;
    this.fb = fb; // the FallbackSession carrying the session
    this.ws = null;
    this.timer = null;
    this.skip = 0; // messages on the WebSocket the fallback already delivered
  }

  // Once the socket holds it as its `_move`: the upgrade goes out when no POST is in flight.
  start() {
    this.fb.upstream.freeze(() => this._upgrade());
  }

  _current() {
    return this.socket._move === this;
  }

  _upgrade() {
    const { socket, fb } = this;
    if (!this._current() || this.ws) return;
    if (fb.stopped) return this.failed();
    const url = new URL(socket._wsUrl.href); // the route's own query (access_token...) stays
    url.searchParams.set('_wsb', 'resume');
    url.searchParams.set('s', fb.token);
    url.searchParams.set('last', String(fb.lastId));
    this.timer = setTimeout(() => this.failed(), socket._opts.transportTimeout);
    let ws;
    try {
      ws = this.ws = socket._newWebSocket(url.toString());
    } catch {
      return this.failed();
    }
    ws.onmessage = (event) => {
      if (socket._carrier === ws) {
        if (this.skip > 0) this.skip -= 1;
        else socket._deliver(event.data);
        return;
      }
      let welcome = null;
      try {
        welcome = typeof event.data === 'string' ? JSON.parse(event.data) : null;
      } catch {
        // not a welcome
      }
      if (welcome?.type === 'welcome' && welcome.resumed === true) this._moved(welcome);
      else this.failed();
    };
    ws.onclose = (event) => {
      if (socket._carrier === ws) socket._finish(event.code, event.reason || '', event.wasClean);
      else this.failed(event.code === SERVICE_RESTART);
    };
    ws.onerror = () => {};
  }

  _moved(welcome) {
    const { socket, fb, ws } = this;
    socket._move = null;
    clearTimeout(this.timer);
    fb.stop(); // quietly: the session goes on, here
    const had = fb.lastId; // delivered by the fallback, some perhaps after the upgrade went out
    this.skip = Math.max(0, had - Number(welcome.from) + 1) || 0;
    socket._carrier = ws;
    socket._attempt = { kind: 'websocket', done: true, timer: null, ws };
    const previous = socket.transport;
    socket.transport = 'websocket';
    socket._rememberWebSocketBroken(false);
    for (const m of fb.upstream.queue) ws.send(m.data);
    const lost = welcome.lost;
    if (lost && Math.max(lost.from, had + 1) <= lost.to) socket._fire('onlost', { from: Math.max(lost.from, had + 1), to: lost.to });
    socket._fire('ontransport', { type: 'transport', transport: 'websocket', previous });
  }

  // `restarting`: the WebSocket was closed by a bridge that is restarting (1012), which says
  // nothing against WebSockets.
  failed(restarting = false) {
    const { socket, fb } = this;
    if (!this._current()) return;
    socket._move = null;
    clearTimeout(this.timer);
    if (this.ws) {
      discard(this.ws);
      if (!restarting) socket._rememberWebSocketBroken(true);
    }
    if (fb.stopped) {
      socket._finish(1006, 'the fallback session is gone', false);
      return;
    }
    fb.upstream.thaw();
    socket._scheduleMove();
  }

  // The socket closed meanwhile (a session already moved here ends with it).
  cancel() {
    clearTimeout(this.timer);
    if (this.ws) discard(this.ws);
  }
}
