#!/usr/bin/python3
"""A controllable HTTP/1.1 backend for wsbridge's HTTP adapter tests (standard library only).

    http_backend.py [--port P] [--control-port C] [--tls-cert F --tls-key K] [--verbose]

Listens on 127.0.0.1:P (0 = any free port) with keep-alive, and additionally on a plain-HTTP
control port (C, default 0 = any free port) that serves the same handlers but is not counted in
the statistics, so a test can poll /_stats without disturbing what it measures (and can reach
/_stats of a TLS backend without TLS). When both are ready it prints, in this order,

    control on 127.0.0.1:<control port>
    listening on 127.0.0.1:<port>

to stdout (flushed). SIGTERM / SIGINT: stops accepting, exits with status 0.

Statistics and records (main port only; control endpoints, i.e. /_stats, /_requests, /_reset and
/_config, are never recorded or counted, on either port):
  requests     recorded requests since the last reset
  connections  distinct connections that carried at least one recorded request since the last
               reset (a connection only used for control calls does not count)
  accepted     TCP connections accepted since the last reset, whatever they carried (none, only
               control calls, a failed TLS handshake, ...)
  open         connections currently open (not reset)
Every recorded request carries `connection`, the number (1, 2, ... since the last reset) of the
connection it arrived on, in the order in which connections carried their first recorded request.

Endpoints (ANY = any method; the path is matched without the query string):
  GET  /_stats                -> {"connections", "requests", "accepted", "open"}
  GET  /_requests             -> list of {"connection", "method", "path" (with query), "version",
                                  "headers" (lower-cased name -> value, repeats joined by ", "),
                                  "header_list" ([name as sent, value] in order), "body" (UTF-8
                                  text, undecodable bytes replaced), "body_base64", "time"}
  POST /_reset                -> 204; clears records and counters (not the /_config settings)
  GET  /_config               -> the current hook configuration
  POST /_config               -> 200 + the new configuration; merges the given keys:
                                  connect_status (200), connect_body ({"claims": {"role":
                                  "tested"}}; null = empty body, a JSON string = sent verbatim as
                                  text/plain, anything else = sent as JSON), connect_delay_ms (0),
                                  disconnect_status (204), disconnect_body (null),
                                  disconnect_delay_ms (0)
  ANY  /echo...               -> 200, body = request body, Content-Type copied (absent if absent),
                                  X-Echo-Method, X-Echo-Path (with query), X-Test-Echo (= X-Test)
  ANY  /json/...              -> 200 {"path": <path with query>, "method": <method>}
  ANY  /status/<code>         -> <code> with {"status": <code>} (no body for 1xx, 204, 304)
  ANY  /slow/<ms>             -> sleeps <ms>, then 200 "slow"
  ANY  /hang                  -> never answers; the handler gives up when the client closes the
                                  connection (see "open") or after 300 s
  ANY  /die                   -> head with Content-Length: 1000, 10 body bytes, then FIN
  ANY  /die/rst               -> the same, then an RST (SO_LINGER 0) instead of a FIN
  ANY  /drop-first/<key>      -> the first request for <key>: its connection closed unanswered;
                                  later ones: 200 as /json/
  ANY  /big/<bytes>           -> 200, <bytes> times 'x', Content-Length set
  ANY  /chunked/<n>[?delay_ms=D] -> 200 chunked, chunks "chunk0\\n" ... "chunk<n-1>\\n" (D ms apart)
  POST /hook/connect          -> as configured (default 200 {"claims": {"role": "tested"}})
  POST /hook/disconnect       -> as configured (default 204)
  anything else               -> 404 {"error": "not found", "path": ...}
HEAD requests get the same status and headers as the corresponding GET, without a body.
Request bodies may be sent with Content-Length or Transfer-Encoding: chunked.
"""

import argparse
import base64
import http.server
import json
import os
import select
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import urllib.parse

CONTROL_PATHS = ("/_stats", "/_requests", "/_reset", "/_config")

DEFAULT_CONFIG = {
    "connect_status": 200,
    "connect_body": {"claims": {"role": "tested"}},
    "connect_delay_ms": 0,
    "disconnect_status": 204,
    "disconnect_body": None,
    "disconnect_delay_ms": 0,
}


class State:
    """Shared by both listeners and all handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.generation = 0  # bumped by /_reset; connection numbers are per generation
        self.records = []
        self.connections = 0
        self.accepted = 0
        self.open = 0
        self.dropped = set()  # /drop-first/<key> keys seen
        self.config = json.loads(json.dumps(DEFAULT_CONFIG))

    def reset(self):
        with self.lock:
            self.generation += 1
            self.records = []
            self.connections = 0
            self.accepted = 0
            self.dropped = set()

    def stats(self):
        with self.lock:
            return {
                "connections": self.connections,
                "requests": len(self.records),
                "accepted": self.accepted,
                "open": self.open,
            }


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never wait for handler threads (e.g. /hang) when closing
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, state, counted, tls_context=None):
        self.state = state
        self.counted = counted  # False for the control listener
        self.tls_context = tls_context
        super().__init__(address, handler)

    def server_bind(self):
        # HTTPServer.server_bind() would call socket.getfqdn(), a reverse DNS lookup that can
        # take seconds on a machine without a resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def process_request(self, request, client_address):
        # Runs in the accepting thread, so `accepted` follows the accept order.
        if self.counted:
            with self.state.lock:
                self.state.accepted += 1
                self.state.open += 1
        t = threading.Thread(target=self._serve_connection, args=(request, client_address),
                             daemon=True)
        t.start()

    def _serve_connection(self, request, client_address):
        try:
            if self.tls_context is not None:
                # The handshake happens here, not in the accepting thread, so a client that
                # connects and stays silent cannot block other connections.
                request.settimeout(10)
                request = self.tls_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - a broken connection must not kill the server
            if VERBOSE:
                self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            if self.counted:
                with self.state.lock:
                    self.state.open -= 1

VERBOSE = False


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wsbridge-test-backend/1"

    # Per connection: (generation, number) once it carried a recorded request.
    conn_number = None

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        if VERBOSE:
            sys.stderr.write("http_backend: %s - %s\n" % (self.address_string(), format % args))

    # Every method goes to dispatch (BaseHTTPRequestHandler looks up do_<METHOD>).
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    # ---- helpers -----------------------------------------------------------------------------

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if te and te.split(",")[-1].strip().lower() == "chunked":
            body = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("EOF in chunked request body")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                body += self.rfile.read(size)
                self.rfile.readline()  # CRLF after the chunk data
            while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            return bytes(body)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status, body=b"", content_type=None, headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        no_body = status < 200 or status in (204, 304)
        if not no_body:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, headers=()):
        self.send(status, json.dumps(obj).encode(), "application/json", headers)

    def record(self, body):
        state = self.server.state
        with state.lock:
            gen = state.generation
            if self.conn_number is None or self.conn_number[0] != gen:
                state.connections += 1
                self.conn_number = (gen, state.connections)
            headers = {}
            for name, value in self.headers.items():
                key = name.lower()
                headers[key] = headers[key] + ", " + value if key in headers else value
            state.records.append({
                "connection": self.conn_number[1],
                "method": self.command,
                "path": self.path,
                "version": self.request_version,
                "headers": headers,
                "header_list": [[n, v] for n, v in self.headers.items()],
                "body": body.decode("utf-8", errors="replace"),
                "body_base64": base64.b64encode(body).decode("ascii"),
                "time": time.time(),
            })

    # ---- dispatch ----------------------------------------------------------------------------

    def dispatch(self):
        try:
            body = self.read_body()
        except (ValueError, ConnectionError) as e:
            self.close_connection = True
            self.send_json(400, {"error": "bad request body: %s" % e})
            return
        path = urllib.parse.urlsplit(self.path).path
        if path in CONTROL_PATHS:
            self.control(path, body)
            return
        if self.server.counted:
            self.record(body)
        self.route(path, body)

    def control(self, path, body):
        state = self.server.state
        if path == "/_stats":
            self.send_json(200, state.stats())
        elif path == "/_requests":
            with state.lock:
                records = list(state.records)
            self.send_json(200, records)
        elif path == "/_reset":
            if self.command != "POST":
                self.send_json(405, {"error": "POST /_reset"})
                return
            state.reset()
            self.send(204)
        elif path == "/_config":
            if self.command == "POST":
                try:
                    update = json.loads(body or b"{}")
                    if not isinstance(update, dict):
                        raise ValueError("not an object")
                    unknown = sorted(set(update) - set(DEFAULT_CONFIG))
                    if unknown:
                        raise ValueError("unknown keys: %s" % ", ".join(unknown))
                except ValueError as e:
                    self.send_json(400, {"error": str(e)})
                    return
                with state.lock:
                    state.config.update(update)
            with state.lock:
                config = dict(state.config)
            self.send_json(200, config)

    def route(self, path, body):
        parts = path.split("/")  # "/a/b" -> ["", "a", "b"]
        head = parts[1] if len(parts) > 1 else ""
        arg = parts[2] if len(parts) > 2 else ""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)

        if head.startswith("echo"):
            headers = [("X-Echo-Method", self.command), ("X-Echo-Path", self.path)]
            if "X-Test" in self.headers:
                headers.append(("X-Test-Echo", self.headers["X-Test"]))
            self.send(200, body, self.headers.get("Content-Type"), headers)
        elif head == "json" and len(parts) > 2:
            self.send_json(200, {"path": self.path, "method": self.command})
        elif head == "status" and arg.isdigit() and 100 <= int(arg) <= 999 and len(parts) == 3:
            code = int(arg)
            self.send_json(code, {"status": code})
        elif head == "slow" and arg.isdigit() and len(parts) == 3:
            time.sleep(int(arg) / 1000.0)
            self.send(200, "slow", "text/plain")
        elif path == "/hang":
            self.hang()
        elif head == "drop-first" and arg and len(parts) == 3:
            # The first request for this key is read and its connection closed with no answer
            # (an idle keep-alive connection closed by the server just as it was reused); later
            # ones are answered.
            with self.server.state.lock:
                first = arg not in self.server.state.dropped
                self.server.state.dropped.add(arg)
            if first:
                self.close_connection = True
            else:
                self.send_json(200, {"path": self.path, "method": self.command})
        elif path in ("/die", "/die/rst"):
            self.die(rst=path == "/die/rst")
        elif head == "big" and arg.isdigit() and len(parts) == 3:
            self.big(int(arg))
        elif head == "chunked" and arg.isdigit() and len(parts) == 3:
            delay = float(query.get("delay_ms", ["0"])[0]) / 1000.0
            self.chunked(int(arg), delay)
        elif path in ("/hook/connect", "/hook/disconnect"):
            self.hook(path.rsplit("/", 1)[1])
        else:
            self.send_json(404, {"error": "not found", "path": self.path})

    # ---- endpoints ---------------------------------------------------------------------------

    def hang(self):
        # Wait without answering until the client goes away (EOF/RST) or 300 s pass. Whatever
        # the client sends meanwhile (pipelined requests, a TLS close_notify) is read from the
        # raw descriptor and dropped: the connection is closed afterwards anyway, and reading
        # (rather than peeking) is what lets us see the EOF behind such bytes.
        self.close_connection = True
        try:
            raw = socket.fromfd(self.connection.fileno(), socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            return
        with raw:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    readable, _, _ = select.select([raw], [], [], 0.2)
                    if readable and not raw.recv(65536):
                        return
                except (OSError, ValueError):
                    return

    def die(self, rst):
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 10)
        self.wfile.flush()
        if rst:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(self.connection.detach())  # the real close(), whatever io refs exist
        # Without rst the server's shutdown_request() sends the FIN right after this returns.

    def big(self, size):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        block = b"x" * 65536
        left = size
        while left > 0:
            n = min(left, len(block))
            self.wfile.write(block[:n])
            left -= n

    def chunked(self, n, delay):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        for i in range(n):
            if delay and i:
                time.sleep(delay)
            data = ("chunk%d\n" % i).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def hook(self, which):
        if self.command != "POST":
            self.send_json(405, {"error": "POST only"}, [("Allow", "POST")])
            return
        with self.server.state.lock:
            status = int(self.server.state.config[which + "_status"])
            body = self.server.state.config[which + "_body"]
            delay = float(self.server.state.config[which + "_delay_ms"]) / 1000.0
        if delay > 0:
            time.sleep(delay)
        if body is None:
            self.send(status)
        elif isinstance(body, str):
            self.send(status, body, "text/plain")
        else:
            self.send_json(status, body)


def main():
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args()
    VERBOSE = args.verbose
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")

    tls_context = None
    if args.tls_cert:
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)
        tls_context.set_alpn_protocols(["http/1.1"])

    state = State()
    control = Server(("127.0.0.1", args.control_port), Handler, state, counted=False)
    main_server = Server(("127.0.0.1", args.port), Handler, state, counted=True,
                         tls_context=tls_context)

    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
               for s in (control, main_server)]
    for t in threads:
        t.start()
    print("control on 127.0.0.1:%d" % control.server_address[1], flush=True)
    print("listening on 127.0.0.1:%d" % main_server.server_address[1], flush=True)

    while not stop.wait(0.5):
        pass
    for s in (main_server, control):
        s.shutdown()
        s.server_close()
    sys.stdout.flush()
    sys.stderr.flush()
    # Handler threads may still sit in /hang or /slow; they are daemons and need no goodbye.
    os._exit(0)


if __name__ == "__main__":
    main()
