#!/usr/bin/env python3
"""A tiny sample HTTP backend for docker/compose.yml (Python standard library only).

    GET  /orders/<id>   200 {"id": "<id>", "status": ..., "items": [...], "total": ...}
    POST /echo          200 with the request body, echoed with its Content-Type
    GET  /healthz       200 {"status": "ok"}

Anything else gets a JSON 404 (or 405 for a known path with the wrong method).
Listens on 0.0.0.0:$PORT (default 8000).
"""

import json
import os
import re
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ORDER_PATH = re.compile(r"^/orders/([A-Za-z0-9_-]{1,64})$")
MAX_BODY = 1 << 20  # 1 MiB


def order(order_id: str) -> dict:
    """A deterministic fake order, so repeated requests return the same document."""
    n = sum(order_id.encode()) % 5 + 1
    items = [{"sku": f"SKU-{i:03d}", "quantity": i, "unit_price": 2.5 * i} for i in range(1, n + 1)]
    return {
        "id": order_id,
        "status": ("pending", "paid", "shipped", "delivered")[n % 4],
        "items": items,
        "total": sum(item["quantity"] * item["unit_price"] for item in items),
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "wsbridge-sample-backend/1.0"
    protocol_version = "HTTP/1.1"

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, document: dict) -> None:
        self.send_body(status, json.dumps(document).encode() + b"\n", "application/json")

    def path_only(self) -> str:
        return self.path.split("?", 1)[0]

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path_only()
        match = ORDER_PATH.match(path)
        if match:
            self.send_json(200, order(match.group(1)))
        elif path == "/healthz":
            self.send_json(200, {"status": "ok"})
        elif path == "/echo":
            self.send_json(405, {"error": "method_not_allowed", "allowed": ["POST"]})
        else:
            self.send_json(404, {"error": "not_found", "path": path})

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        path = self.path_only()
        # Every early answer below leaves the request body unread: end the connection after it.
        close_after_request = self.close_connection
        self.close_connection = True
        if ORDER_PATH.match(path):
            self.send_json(405, {"error": "method_not_allowed", "allowed": ["GET", "HEAD"]})
            return
        if path != "/echo":
            self.send_json(404, {"error": "not_found", "path": path})
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_json(411, {"error": "length_required"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.send_json(413 if length > MAX_BODY else 400, {"error": "bad_content_length"})
            return
        body = self.rfile.read(length)
        self.close_connection = close_after_request
        self.send_body(200, body, self.headers.get("Content-Type", "application/octet-stream"))

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    # As PID 1 of its container, the process must handle SIGTERM itself for `docker stop`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"sample backend listening on 0.0.0.0:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
