#!/usr/bin/python3
"""A WebSocket server for the pass-through tests (proxy_websocket.test.mjs and friends), on
Debian's python3-websockets (10.x, the legacy asyncio API). Prints "LISTENING <port>" once it
accepts connections, and one line per event the tests check:
  CLOSED <op> <code> <reason>   a connection ended (the close code the backend saw)
  FLOOD <id> <messages sent>    progress of a flood (after each message the backend sent)
  STALL <id> reading            a stalled connection started reading again

Behaviour, chosen by the last segment of the path:
  echo     every message back with its type; a text message "please-close:<code>:<reason>" makes
           the backend close with that code and reason instead.
  headers  first sends JSON {path, headers: [[name, value]...], subprotocol}, then as echo.
  refuse   the upgrade is refused: 403, X-Refused-By: backend, body "no entry for you\n".
  stall    ?ms=N: reads nothing for N ms, then counts and hashes every binary message until a
           text "done", and answers JSON {messages, bytes, sha256}.
  flood    ?count=N&size=S: sends N binary messages of S bytes (blocks.py's block i), each send
           waiting for the socket to drain, then a text "end"; prints FLOOD lines.
The backend speaks the subprotocols chat.v2 and chat.v3 (chosen among the client's offer).
"""
import argparse
import asyncio
import hashlib
import http
import itertools
import json
import sys
from urllib.parse import urlsplit, parse_qs

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from blocks import block  # noqa: E402

import websockets  # noqa: E402
from websockets.datastructures import Headers  # noqa: E402

_ids = itertools.count(1)


def op_of(path):
    url = urlsplit(path)
    return url.path.rstrip("/").rsplit("/", 1)[-1], {k: v[-1] for k, v in parse_qs(url.query).items()}


def process_request(path, request_headers):
    op, _ = op_of(path)
    if op == "refuse":
        return (http.HTTPStatus.FORBIDDEN, Headers([("Content-Type", "text/plain"), ("X-Refused-By", "backend")]),
                b"no entry for you\n")
    return None


async def echo(ws):
    async for message in ws:
        if isinstance(message, str) and message.startswith("please-close:"):
            _, code, reason = message.split(":", 2)
            await ws.close(int(code), reason)
            return
        await ws.send(message)


async def handler(ws):
    op, query = op_of(ws.path)
    conn = next(_ids)
    try:
        if op == "headers":
            await ws.send(json.dumps({"path": ws.path, "headers": list(ws.request_headers.raw_items()),
                                      "subprotocol": ws.subprotocol}))
            await echo(ws)
        elif op == "stall":
            await asyncio.sleep(int(query.get("ms", "3000")) / 1000)
            print("STALL %d reading" % conn, flush=True)
            h, n, total = hashlib.sha256(), 0, 0
            async for message in ws:
                if isinstance(message, str):
                    if message == "done":
                        await ws.send(json.dumps({"messages": n, "bytes": total, "sha256": h.hexdigest()}))
                    continue
                h.update(message)
                n += 1
                total += len(message)
        elif op == "flood":
            count, size = int(query.get("count", "64")), int(query.get("size", str(1 << 20)))
            for i in range(count):
                await ws.send(block(i, size))
                print("FLOOD %d %d" % (conn, i + 1), flush=True)
            await ws.send("end")
            await ws.wait_closed()
        else:
            await echo(ws)
    except websockets.ConnectionClosed:
        pass
    finally:
        print("CLOSED %s %s %s" % (op, ws.close_code, ws.close_reason or ""), flush=True)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    async with websockets.serve(handler, "127.0.0.1", args.port, process_request=process_request,
                                subprotocols=["chat.v2", "chat.v3"], max_size=64 << 20, max_queue=2,
                                ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print("LISTENING %d" % port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
