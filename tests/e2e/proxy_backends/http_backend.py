#!/usr/bin/python3
"""A raw-socket HTTP/1.1 backend for the reverse proxy tests (proxy_*.test.mjs). It parses what
wsbridge sends itself (no http.server: the tests must see the head exactly as it arrived, and
bodies chunked or not as they were framed), keeps connections alive, and can misbehave on
purpose. Prints "LISTENING <port>" once it accepts connections.

Endpoints, chosen by the last segment of the path (so any proxy prefix or base reaches them):
  echo      (and anything unknown) reads the body (Content-Length or chunked) and answers JSON:
            conn (this TCP connection's number), seq (request number on it), method, target,
            version, headers [[name, value]...] as received, framing ("length", "chunked",
            "none"), body_bytes, body_sha256, body (the text when short).
            A request with "Expect: 100-continue" gets "100 Continue" before its body is read.
            ?then_close=1: the connection is closed right after the answer, which did not say so
            (what a backend's keep-alive timeout does to an idle pooled connection).
            ?ignore_close=1: a request's "Connection: close" is ignored: the answer says
            keep-alive and the connection stays open for more.
            ?pause_after=N&pause_ms=M: stops reading for M ms after N body bytes (a slow reader).
  stream    ?bytes=N[&framing=chunked|length]: N bytes of blocks.py's stream (1 MiB chunks).
  truncate  Content-Length 1000000, 400000 bytes sent, then the connection closed.
  bad-chunk a chunked answer: "5\r\nhello\r\n", then ?line= (default "ffffffffffffffffff")
            as the next chunk-size line and 10 bytes, then silence until the peer closes.
  hang      reads the request and never answers (until the peer closes).
  reset     reads the request and resets the connection (RST, no answer).
  garbage   answers bytes that are not HTTP, then closes.
  bare-lf   answers at once with a head whose lines end in LF alone, and keeps the connection.
  hop       answers with hop-by-hop response fields that a proxy must drop.
  until-close  ?bytes=N: an answer without Content-Length or chunking, ended by the close.
  slow-body ?ms=N: the head and 100 of 1000 announced bytes, then silence for N ms.
  switch    ?accept=right|wrong|none|bare[&extra=TEXT]: 101 to anything (TEXT right behind it),
            then HTTP again on the connection.
  reject    answers 413 with Connection: close before reading the body, then drains it.
"""
import argparse
import base64
import hashlib
import itertools
import json
import socket
import socketserver
import struct
import sys
import threading
import time
from urllib.parse import urlsplit, parse_qs

from blocks import BLOCK_SIZE, stream_blocks

_conn_ids = itertools.count(1)
_lock = threading.Lock()


class BadRequest(Exception):
    pass


def read_head(rfile):
    line = rfile.readline(65537)
    if not line:
        return None
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests
        line = rfile.readline(65537)
        if not line:
            return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise BadRequest("request line %r" % line)
    headers = []
    while True:
        h = rfile.readline(65537)
        if not h:
            raise BadRequest("eof in head")
        if h in (b"\r\n", b"\n"):
            break
        name, _, value = h.decode("latin-1").rstrip("\r\n").partition(":")
        headers.append([name, value.strip()])
    return parts[0], parts[1], parts[2], headers


def header(headers, name):
    values = [v for k, v in headers if k.lower() == name]
    return ", ".join(values) if values else None


class Body:
    """Reads a request body as framed; `pause` = (after_bytes, seconds) or None."""

    def __init__(self, rfile, headers, pause=None):
        self.rfile = rfile
        te = header(headers, "transfer-encoding")
        cl = header(headers, "content-length")
        if te is not None:
            if te.lower().split(",")[-1].strip() != "chunked":
                raise BadRequest("transfer-encoding %r" % te)
            self.framing = "chunked"
        elif cl is not None:
            self.framing = "length"
            self.length = int(cl)
        else:
            self.framing = "none"
        self.pause = pause
        self.count = 0
        self.hash = hashlib.sha256()
        self.head = b""

    def _take(self, data):
        if self.pause and self.count < self.pause[0] <= self.count + len(data):
            time.sleep(self.pause[1])
            self.pause = None
        self.count += len(data)
        self.hash.update(data)
        if len(self.head) < 4096:
            self.head += data[: 4096 - len(self.head)]

    def _read_exact(self, n):
        while n > 0:
            data = self.rfile.read1(min(n, 65536)) if hasattr(self.rfile, "read1") else self.rfile.read(min(n, 65536))
            if not data:
                raise BadRequest("eof in body")
            self._take(data)
            n -= len(data)

    def read_all(self):
        if self.framing == "length":
            self._read_exact(self.length)
        elif self.framing == "chunked":
            while True:
                line = self.rfile.readline(4096)
                if not line.endswith(b"\n"):
                    raise BadRequest("chunk size line %r" % line)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(4096)
                        if t in (b"\r\n", b"\n"):
                            return
                        if not t:
                            raise BadRequest("eof in trailers")
                self._read_exact(size)
                if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise BadRequest("no CRLF after a chunk")


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.request.makefile("rb", buffering=65536)
        with _lock:
            self.conn = next(_conn_ids)

    def send(self, status, headers, body=b"", head_only=False):
        lines = ["HTTP/1.1 %s" % status] + ["%s: %s" % kv for kv in headers]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.request.sendall(data if head_only else data + body)

    def handle(self):
        seq = 0
        try:
            while True:
                head = read_head(self.rfile)
                if head is None:
                    return
                seq += 1
                method, target, version, headers = head
                url = urlsplit(target)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                op = url.path.rstrip("/").rsplit("/", 1)[-1]
                keep = (header(headers, "connection") or "").lower() != "close" or \
                    query.get("ignore_close") == "1"
                conn_field = ("Connection", "keep-alive" if keep else "close")
                if op == "hang":
                    while self.request.recv(65536):
                        pass
                    return
                if op == "reset":
                    self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.rfile.close()  # the socket's fd closes only when its file is closed too
                    self.request.close()
                    return
                if op == "bad-chunk":
                    self.send("200 OK", [("Content-Type", "text/plain"),
                                         ("Transfer-Encoding", "chunked")], b"", head_only=True)
                    self.request.sendall(b"5\r\nhello\r\n")
                    time.sleep(0.1)  # (a read of its own for the good chunk, likely)
                    line = query.get("line", "ffffffffffffffffff").encode("latin-1")
                    self.request.sendall(line + b"\r\n" + b"x" * 10)
                    while self.request.recv(65536):
                        pass
                    return
                if op == "garbage":
                    self.request.sendall(b"THIS IS NOT HTTP\r\n\r\n")
                    return
                if op == "early-hints-then-hang":
                    self.request.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
                    while self.request.recv(65536):
                        pass
                    return
                if op == "early-hints":
                    # ?n= interim 103 heads (a backend that never stops sending them: n large),
                    # then the answer.
                    hint = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                    try:
                        for _ in range(int(query.get("n", "1"))):
                            self.request.sendall(hint)
                    except OSError:
                        return
                    self.send("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2"),
                                         conn_field], b"ok")
                    continue
                if op == "switch":
                    # 101 to anything, as an endpoint that takes its status from the request would,
                    # then the next request read on the same connection as HTTP again: a proxy that
                    # tunnels such a 101 gives its client a raw pipe past its prefix rules.
                    # ?accept=right|wrong|none|bare: the Sec-WebSocket-Accept it carries (bare: no
                    # Upgrade and Connection either).
                    mode = query.get("accept", "none")
                    fields = [] if mode == "bare" else ["Upgrade: websocket", "Connection: Upgrade"]
                    key = header(headers, "sec-websocket-key") or ""
                    if mode in ("right", "wrong"):
                        guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
                        digest = hashlib.sha1((key + guid + ("" if mode == "right" else "x")).encode())
                        fields.append("Sec-WebSocket-Accept: " + base64.b64encode(digest.digest()).decode())
                    # ?extra=TEXT: sent in the same write, right behind the head.
                    self.request.sendall(("\r\n".join(["HTTP/1.1 101 Switching Protocols"] + fields)
                                          + "\r\n\r\n" + query.get("extra", "")).encode())
                    continue
                if op == "bare-lf":
                    self.request.sendall(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
                    while self.request.recv(65536):
                        pass
                    return
                if op == "reject":
                    # Refuses an upload before reading it, as an application checking
                    # credentials or quotas does; then drains what comes (a lingering close).
                    msg = b"upload refused\n"
                    self.send("413 Payload Too Large", [("Content-Type", "text/plain"),
                                                        ("Content-Length", str(len(msg))),
                                                        ("Connection", "close")], msg)
                    self.request.shutdown(socket.SHUT_WR)
                    self.request.settimeout(10)
                    while self.rfile.read1(65536):
                        pass
                    return
                pause = None
                if "pause_after" in query:
                    pause = (int(query["pause_after"]), int(query.get("pause_ms", "3000")) / 1000)
                body = Body(self.rfile, headers, pause)
                if (header(headers, "expect") or "").lower() == "100-continue":
                    # As real servers do: an interim answer, then the body is read.
                    self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body.read_all()
                if op == "truncate":
                    self.send("200 OK", [("Content-Type", "application/octet-stream"),
                                         ("Content-Length", "1000000")], b"x" * 400000)
                    self.request.shutdown(socket.SHUT_RDWR)
                    return
                if op == "stream":
                    total = int(query.get("bytes", str(BLOCK_SIZE)))
                    chunked = query.get("framing", "chunked") == "chunked"
                    framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(total))
                    self.send("200 OK", [("Content-Type", "application/octet-stream"), framing, conn_field])
                    if method == "HEAD":
                        continue
                    for b in stream_blocks(total):
                        if chunked:
                            self.request.sendall(b"%x\r\n" % len(b) + b + b"\r\n")
                        else:
                            self.request.sendall(b)
                    if chunked:
                        self.request.sendall(b"0\r\n\r\n")
                    if not keep:
                        return
                    continue
                if op == "until-close":
                    # An old-style answer: no Content-Length, no chunking, the body ends at the close.
                    self.send("200 OK", [("Content-Type", "application/octet-stream"), ("Connection", "close")])
                    for b in stream_blocks(int(query.get("bytes", "300000"))):
                        self.request.sendall(b)
                    self.request.shutdown(socket.SHUT_WR)
                    return
                if op == "slow-body":
                    # The head and 100 of the 1000 announced bytes, then nothing for ?ms= (an idle backend).
                    self.send("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1000"), conn_field],
                              b"s" * 100)
                    time.sleep(int(query.get("ms", "30000")) / 1000)
                    return
                if op == "hop":
                    payload = b"hop-by-hop\n"
                    self.send("200 OK", [("Content-Type", "text/plain"),
                                         ("Content-Length", str(len(payload))),
                                         ("Connection", "keep-alive, X-Backend-Hop"),
                                         ("X-Backend-Hop", "must-not-pass"),
                                         ("Keep-Alive", "timeout=99, max=1000"),
                                         ("Proxy-Authenticate", "Basic realm=backend"),
                                         ("Proxy-Connection", "keep-alive"),
                                         ("X-End-To-End", "passes")], payload, method == "HEAD")
                    continue
                text = None
                if body.count <= 4096:
                    try:
                        text = body.head.decode("utf-8")
                    except UnicodeDecodeError:
                        text = None
                payload = json.dumps({
                    "conn": self.conn, "seq": seq, "method": method, "target": target,
                    "version": version, "headers": headers, "framing": body.framing,
                    "body_bytes": body.count, "body_sha256": body.hash.hexdigest(), "body": text,
                }).encode()
                self.send("200 OK", [("Content-Type", "application/json"),
                                     ("Content-Length", str(len(payload))),
                                     ("X-Backend-Conn", str(self.conn)), conn_field],
                          payload, method == "HEAD")
                if not keep or query.get("then_close") == "1":
                    return
        except (BadRequest, ValueError) as e:
            try:
                msg = ("bad request: %s\n" % e).encode()
                self.send("400 Bad Request", [("Content-Length", str(len(msg))), ("Connection", "close")], msg)
            except OSError:
                pass
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    print("LISTENING %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    main()
