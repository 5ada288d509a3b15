#!/usr/bin/python3
"""An RFC 8441 (WebSocket over HTTP/2) client that checks, case by case, what a server does with
extended CONNECT streams; written against tests/h2probe/h2probe.c (lws 4.1.6) for docs/TLS.md
"HTTP/2". Research only, not part of the suite. Needs python3-h2 (Debian 12: 4.1.0).

Usage: rfc8441_client.py HOST PORT [PATH]     prints one line per observation
"""
import os
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

HOST, PORT = sys.argv[1], int(sys.argv[2])
PATH = sys.argv[3] if len(sys.argv) > 3 else "/echo"


def ws_frame(opcode, payload, mask=True, fin=True):
    """An RFC 6455 frame, masked as a client must (or not, to test the server)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def parse_frames(buf):
    """Complete server frames at the start of buf: ([(fin, opcode, rsv, payload)], rest)."""
    out = []
    while len(buf) >= 2:
        fin, rsv, opcode = buf[0] >> 7, (buf[0] >> 4) & 7, buf[0] & 15
        masked, n, i = buf[1] >> 7, buf[1] & 127, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, i = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, i = struct.unpack("!Q", buf[2:10])[0], 10
        if masked:
            i += 4
        if len(buf) < i + n:
            break
        out.append((fin, opcode, rsv, buf[i:i + n]))
        buf = buf[i + n:]
    return out, buf


class Conn:
    """One TLS + HTTP/2 connection (ALPN h2), with WebSocket streams on it."""

    def __init__(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((HOST, PORT), timeout=5)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.alpn = self.sock.selected_alpn_protocol()
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.flush()
        self.server_settings = {}
        self.events = []
        self.data = {}       # stream id -> bytes received
        self.ended = set()   # stream ids the server ended (END_STREAM)
        self.reset = {}      # stream id -> RST_STREAM error code
        self.goaway = None
        self.headers = {}
        self.pump(until=lambda: self.server_settings, timeout=2)

    def flush(self):
        out = self.h2.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self, until=lambda: False, timeout=2.0):
        end = time.monotonic() + timeout
        while not until() and time.monotonic() < end and self.goaway is None:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            except (ssl.SSLError, ConnectionError, OSError) as e:
                self.goaway = f"socket: {e}"
                break
            if not chunk:
                self.goaway = self.goaway or "EOF"
                break
            for ev in self.h2.receive_data(chunk):
                self.events.append(ev)
                if isinstance(ev, h2.events.RemoteSettingsChanged):
                    for k, v in ev.changed_settings.items():
                        self.server_settings[int(k)] = v.new_value
                elif isinstance(ev, h2.events.ResponseReceived):
                    self.headers[ev.stream_id] = [(k.decode(), v.decode()) for k, v in ev.headers]
                elif isinstance(ev, h2.events.DataReceived):
                    self.data[ev.stream_id] = self.data.get(ev.stream_id, b"") + ev.data
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    self.ended.add(ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset):
                    self.reset[ev.stream_id] = ev.error_code
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = f"GOAWAY error={ev.error_code!r} debug={ev.additional_data!r}"
            self.flush()
        return until()

    def connect_ws(self, extra=()):
        sid = self.h2.get_next_available_stream_id()
        hdrs = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
                (":path", PATH), (":authority", f"localhost:{PORT}"),
                ("sec-websocket-version", "13"), ("origin", f"https://localhost:{PORT}")]
        self.h2.send_headers(sid, hdrs + list(extra))
        self.flush()
        self.pump(until=lambda: sid in self.headers or sid in self.reset, timeout=2)
        return sid

    def send(self, sid, data):
        """Sends data on the stream, within the flow control windows the server grants."""
        while data:
            window = self.h2.local_flow_control_window(sid)
            n = min(window, self.h2.max_outbound_frame_size, len(data))
            if n <= 0:
                if not self.pump(until=lambda: self.h2.local_flow_control_window(sid) > 0,
                                 timeout=3):
                    return f"stalled: no flow-control window after {len(data)} unsent bytes"
                continue
            self.h2.send_data(sid, data[:n])
            data = data[n:]
            self.flush()
        return "sent"

    def messages(self, sid, count=1, timeout=2):
        def have():
            frames, _ = parse_frames(self.data.get(sid, b""))
            return len(frames) >= count
        self.pump(until=have, timeout=timeout)
        return parse_frames(self.data.get(sid, b""))[0]


def report(name, value):
    print(f"{name}: {value}", flush=True)


def main():
    c = Conn()
    report("alpn", c.alpn)
    report("server SETTINGS", {h2.settings.SettingCodes(k).name if k in
                               [s.value for s in h2.settings.SettingCodes] else k: v
                               for k, v in c.server_settings.items()})

    # 1. The extended CONNECT, with a permessage-deflate offer and a subprotocol list.
    sid = c.connect_ws([("sec-websocket-extensions", "permessage-deflate; client_max_window_bits"),
                        ("sec-websocket-protocol", "bearer.secret-token, probe")])
    report("1 response headers", c.headers.get(sid) or f"none (reset={c.reset.get(sid)} "
           f"goaway={c.goaway})")
    # 2. A masked text message, echoed?
    c.send(sid, ws_frame(1, b"hello over h2"))
    report("2 echo of masked text", [(f, o, r, p[:40]) for f, o, r, p in c.messages(sid)])
    # 3. An unmasked client frame: RFC 6455 5.1 says the server must close (1002).
    c.data[sid] = b""
    c.send(sid, ws_frame(1, b"unmasked", mask=False))
    got = c.messages(sid, timeout=1)
    report("3 after an unmasked frame", [(f, o, r, p[:40]) for f, o, r, p in got] or "nothing")
    # 4. A 300 KB binary message: HTTP/2 flow control (the server's INITIAL_WINDOW_SIZE is 0).
    c.data[sid] = b""
    big = os.urandom(300 * 1024)
    report("4 sending 300 KB", c.send(sid, ws_frame(2, big)))
    frames = c.messages(sid, timeout=3)
    report("4 what came back", [(f, o, p.decode() if o == 1 else f"{len(p)} B")
                                for f, o, r, p in frames] or "nothing")
    # 5. Close 1000: the close frame back, and the stream ended (END_STREAM) or reset?
    c.data[sid] = b""
    c.send(sid, ws_frame(8, struct.pack("!H", 1000) + b"bye"))
    frames = c.messages(sid, timeout=2)
    c.pump(until=lambda: sid in c.ended or sid in c.reset, timeout=2)
    report("5 close", {"frames": [(o, p[:2].hex()) for f, o, r, p in frames],
                       "END_STREAM": sid in c.ended, "RST_STREAM": c.reset.get(sid),
                       "goaway": c.goaway})
    c.sock.close()

    # 6. 30 WebSockets opened and closed one after the other on one connection (24 streams).
    c = Conn()
    ok = 0
    for i in range(30):
        sid = c.connect_ws()
        if not c.headers.get(sid) or c.goaway:
            break
        c.send(sid, ws_frame(8, struct.pack("!H", 1000)))
        c.pump(until=lambda: sid in c.ended or sid in c.reset, timeout=2)
        ok += 1
    report("6 sequential open+close on one connection", f"{ok}/30 opened; goaway={c.goaway}")
    c.sock.close()

    # 7. 25 WebSockets at once on one connection, above SETTINGS_MAX_CONCURRENT_STREAMS=24 (a
    # misbehaving client: the h2 library would refuse the 25th, so its count is hidden from it).
    c = Conn()
    c.h2.__class__ = type("Unlimited", (h2.connection.H2Connection,),
                          {"open_outbound_streams": property(lambda self: 0)})
    sids = []
    for i in range(25):
        sids.append(c.connect_ws())
        if c.goaway:
            break
    opened = sum(1 for s in sids if c.headers.get(s))
    report("7 25 concurrent streams", f"{opened} answered; resets={c.reset}; goaway={c.goaway}")
    c.sock.close()

    # 8. An extended CONNECT for another :protocol.
    c = Conn()
    sid = c.h2.get_next_available_stream_id()
    c.h2.send_headers(sid, [(":method", "CONNECT"), (":protocol", "chat"), (":scheme", "https"),
                            (":path", PATH), (":authority", f"localhost:{PORT}")])
    c.flush()
    c.pump(until=lambda: sid in c.headers or sid in c.reset, timeout=2)
    report("8 :protocol=chat", {"headers": c.headers.get(sid), "reset": c.reset.get(sid),
                                "goaway": c.goaway})
    c.sock.close()

main()
