#!/usr/bin/python3
"""permessage-deflate against a running wsbridge with python3-websockets (Debian's), a client
nobody on this project wrote. Run by tests/integration/compression_foreign_test.cpp, which starts
wsbridge (and mosquitto) and passes the ports:

    websockets_client.py CASE --port P [--broker-port B]

Exit status 0 when every check of CASE holds; otherwise the failed checks are printed.
The frames' RSV1 bits are read where websockets parses them (PerMessageDeflate.decode sees every
data frame as it came off the socket), so a server that stops compressing fails the checks.
"""
import argparse
import asyncio
import dataclasses
import random
import subprocess
import sys
import zlib

import websockets
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.headers import parse_extension

THRESHOLD = 128  # the contract's default compression_threshold
KIB = 1024
MIB = 1024 * KIB
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what, flush=True)
    return ok


def text_payload(size, seed=0):
    """Readable, compressible text of exactly `size` bytes (ASCII, no newline)."""
    rng = random.Random(seed)
    words = ["temperature", "humidity", "sensor", "kitchen", "21.5", "40%", "ok", "status"]
    out, n = [], 0
    while n < size:
        w = rng.choice(words) + " "
        out.append(w)
        n += len(w)
    return "".join(out)[:size]


def binary_payload(size, seed=1):
    """Bytes over the full 0..255 range, but from runs, so deflate shrinks them."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += bytes([rng.randrange(256)]) * rng.randrange(1, 9)
    return bytes(out[:size])


def expect_compressed(message):
    """What the contract says of a server frame: compressed when the message is at least the
    threshold and deflate shrinks it. None (not checked) near the shrink boundary, where the
    server's level and framing may decide either way."""
    data = message.encode() if isinstance(message, str) else message
    if len(data) < THRESHOLD:
        return False
    d = zlib.compressobj(1, zlib.DEFLATED, -15)
    ratio = (len(d.compress(data) + d.flush(zlib.Z_SYNC_FLUSH)) - 4) / len(data)
    return True if ratio < 0.9 else False if ratio > 1.0 else None


def random_bytes(size, seed=2):
    return random.Random(seed).randbytes(size)


def window_probe(window_bits):
    """Incompressible block repeated at a distance just over 2**window_bits: a server that
    deflates with a larger window than it negotiated emits a match that Recorder's
    inflate_within_window rejects ("invalid distance too far back"); then a compressible tail
    so the message still shrinks and is sent compressed. (zlib itself never emits a distance
    over 2**bits - 262, which is why a 9-bit deflater suits an 8-bit window.)"""
    block = random_bytes((1 << window_bits) + 64, seed=window_bits)
    return block + block + text_payload(4 * KIB, seed=window_bits).encode()


def inflate_within_window(data, window_bits):
    """Inflates one compressed message 16 bytes of output at a time, so zlib holds no more
    history than the window (a single large decompress() resolves any distance from its own
    output buffer, whatever the window): raises zlib.error on a distance beyond 2**window_bits."""
    d = zlib.decompressobj(wbits=-window_bits)
    buf = data + b"\x00\x00\xff\xff"
    while True:
        chunk = d.decompress(buf, 16)
        buf = d.unconsumed_tail
        if not buf and not chunk:
            return


class Recorder:
    """Wraps the negotiated extension's decode: records (opcode, rsv1, length) of the first
    frame of every data message the server sent, as read from the wire. With a window below 15
    negotiated, also checks that every compressed message stays within it."""

    def __init__(self, ws, window_bits=15):
        self.frames = []
        self.window_bits = window_bits
        self.pending = None  # compressed bytes of the message being received
        for ext in ws.extensions:
            original = ext.decode

            def decode(frame, *, max_size=None, _original=original):
                self.observe(frame)
                return _original(frame, max_size=max_size)

            ext.decode = decode

    def observe(self, frame):
        opcode = frame.opcode.value
        if opcode in (1, 2):  # text, binary (a message's first frame)
            self.frames.append((opcode, frame.rsv1, len(frame.data)))
            self.pending = bytearray() if frame.rsv1 and self.window_bits < 15 else None
        if opcode in (0, 1, 2) and self.pending is not None:
            self.pending += frame.data
            if frame.fin:
                try:
                    inflate_within_window(bytes(self.pending), self.window_bits)
                except zlib.error as e:
                    check(False, f"a server message needs more than its {self.window_bits}-bit "
                                 f"window: {e}")
                self.pending = None

    def last_rsv1(self):
        return self.frames[-1][1] if self.frames else None


def negotiated(ws):
    """The response's Sec-WebSocket-Extensions as [(name, [(param, value)])], or []."""
    out = []
    for value in ws.response_headers.get_all("Sec-WebSocket-Extensions"):
        out += parse_extension(value)
    return out


def expected_params(server_max_window_bits=None):
    params = {("server_no_context_takeover", None), ("client_no_context_takeover", None)}
    if server_max_window_bits is not None:
        params.add(("server_max_window_bits", str(server_max_window_bits)))
    return params


def check_response(ws, want, label):
    """`want` None: no extension at all; else the exact parameter set of permessage-deflate
    (order free, no others, no repeats)."""
    exts = negotiated(ws)
    raw = ws.response_headers.get_all("Sec-WebSocket-Extensions")
    if want is None:
        return check(exts == [], f"{label}: expected no extension, got {raw}")
    if not check(len(exts) == 1 and exts[0][0] == "permessage-deflate",
                 f"{label}: expected one permessage-deflate, got {raw}"):
        return False
    params = exts[0][1]
    return check(len(params) == len(set(params)) and set(params) == want,
                 f"{label}: response {raw}, expected parameters {sorted(want, key=str)}")


async def connect(port, path, factory=None, extra_headers=None):
    extensions = [factory] if factory is not None else None
    return await websockets.connect(
        f"ws://127.0.0.1:{port}{path}", compression=None, extensions=extensions,
        extra_headers=extra_headers, max_size=4 * MIB, open_timeout=10, close_timeout=5,
        ping_interval=None)


async def echo(ws, rec, message, label, expect_rsv1=None):
    await ws.send(message)
    got = await asyncio.wait_for(ws.recv(), 20)
    ok = check(type(got) is type(message) and got == message,
               f"{label}: echo differs ({type(got).__name__} of {len(got)} for "
               f"{type(message).__name__} of {len(message)})")
    if ok and expect_rsv1 is not None and rec is not None:
        check(rec.last_rsv1() == expect_rsv1,
              f"{label}: server frame RSV1 {rec.last_rsv1()}, expected {expect_rsv1}")
    return ok


# ---- cases -------------------------------------------------------------------------------

# (label, factory arguments, expected server_max_window_bits in the response)
OFFERS = [
    ("default offer (client_max_window_bits)", {}, None),
    ("no parameters", {"client_max_window_bits": None}, None),
    ("client_max_window_bits=10", {"client_max_window_bits": 10}, None),
    ("server_no_context_takeover", {"server_no_context_takeover": True}, None),
    ("client_no_context_takeover", {"client_no_context_takeover": True}, None),
    ("server_max_window_bits=15", {"server_max_window_bits": 15}, 15),
    ("server_max_window_bits=10", {"server_max_window_bits": 10}, 10),
    ("server_max_window_bits=9", {"server_max_window_bits": 9}, 9),
    ("everything", {"server_no_context_takeover": True, "client_no_context_takeover": True,
                    "server_max_window_bits": 12, "client_max_window_bits": 12}, 12),
]


async def exchange_compressed(ws, rec, label, window_bits=15):
    await echo(ws, rec, text_payload(200), f"{label}: 200 B text", expect_rsv1=True)
    await echo(ws, rec, binary_payload(64 * KIB), f"{label}: 64 KiB binary", expect_rsv1=True)
    # Twice: a server keeping its context across messages would be caught by a client that
    # resets its inflater for every message (server_no_context_takeover was negotiated).
    await echo(ws, rec, text_payload(5000, seed=7), f"{label}: 5000 B text", expect_rsv1=True)
    await echo(ws, rec, text_payload(5000, seed=7), f"{label}: same again", expect_rsv1=True)
    if window_bits < 15:
        await echo(ws, rec, window_probe(window_bits), f"{label}: window probe", expect_rsv1=True)


async def offer_and_exchange(port, path, label, kwargs, smwb):
    """One connection with one offer: the exact response, then compressed echoes. A failed
    handshake (websockets refuses a response that breaks RFC 7692) is reported, not raised,
    so the other offers still run."""
    try:
        ws = await connect(port, path, ClientPerMessageDeflateFactory(**kwargs))
    except Exception as e:  # noqa: BLE001
        check(False, f"{label}: handshake failed: {type(e).__name__}: {e}")
        return
    try:
        if check_response(ws, expected_params(smwb), label):
            await exchange_compressed(ws, Recorder(ws, smwb or 15), label, smwb or 15)
    finally:
        await ws.close()


async def case_offers(args):
    for label, kwargs, smwb in OFFERS:
        await offer_and_exchange(args.port, "/echo", label, kwargs, smwb)


async def case_window8(args):
    """server_max_window_bits=8: zlib cannot deflate raw with a 256-byte window, so the server
    must either decline the offer or keep every frame within 8 bits; the connection works."""
    label = "server_max_window_bits=8"
    ws = await connect(args.port, "/echo", ClientPerMessageDeflateFactory(server_max_window_bits=8))
    try:
        rec = Recorder(ws, 8)
        if negotiated(ws):
            if check_response(ws, expected_params(8), label):
                await exchange_compressed(ws, rec, label, 8)
        else:
            await echo(ws, None, window_probe(8), f"{label} declined: echo")
    finally:
        await ws.close()


async def case_configured_window(args):
    """A route with compression_window_bits = 10 announces it even when not asked, and the
    smaller of offer and configuration otherwise."""
    for label, kwargs, smwb in [("not offered", {}, 10),
                                ("offered 12", {"server_max_window_bits": 12}, 10),
                                ("offered 9", {"server_max_window_bits": 9}, 9)]:
        await offer_and_exchange(args.port, "/echo10", f"/echo10 {label}", kwargs, smwb)


async def case_echo(args):
    ws = await connect(args.port, "/echo", ClientPerMessageDeflateFactory())
    rec = Recorder(ws)
    try:
        check_response(ws, expected_params(), "default offer")
        for size in [1, 100, 127, 128, 200, 64 * KIB, MIB - KIB]:
            for message in [text_payload(size, seed=size), binary_payload(size, seed=size),
                            random_bytes(size, seed=size)]:
                await echo(ws, rec, message, f"{type(message).__name__} {size} B",
                           expect_compressed(message))
        # Multi-byte UTF-8 text.
        await echo(ws, rec, ("žluťoučký kůň ✓ " * 4000)[:30000], "UTF-8 text", True)
        # The RSV1 checks are only worth something if both kinds of frame were seen.
        rsv1 = {r for _, r, _ in rec.frames}
        check(rsv1 == {True, False}, f"RSV1 values seen: {rsv1}")
    finally:
        await ws.close()


async def case_too_big(args):
    """/echo allows 1 MiB: compressed messages that inflate past it close with 1009 (a few KiB on
    the wire, so only the inflated size can trip the limit); one just under passes first."""
    for label, message in [("zeros 1 MiB + 1", b"\0" * (MIB + 1)),
                           ("text 4 MiB", text_payload(4 * MIB))]:
        ws = await connect(args.port, "/echo", ClientPerMessageDeflateFactory())
        try:
            await echo(ws, None, b"\0" * MIB, f"{label}: exactly 1 MiB first")
            await ws.send(message)
            try:
                got = await asyncio.wait_for(ws.recv(), 20)
                check(False, f"{label}: echoed {len(got)} bytes instead of closing")
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                check(code == 1009, f"{label}: close code {code}, expected 1009 ({closed})")
        finally:
            await ws.close()


async def case_corrupt(args):
    """A compressed message whose deflate data is invalid (reserved block type) closes 1007."""
    ws = await connect(args.port, "/echo", ClientPerMessageDeflateFactory())
    try:
        ext = ws.extensions[0]
        ext.encode = lambda frame: dataclasses.replace(frame, rsv1=True, data=b"\x07\xff\xff\xff")
        await ws.send("this message will not inflate")
        try:
            got = await asyncio.wait_for(ws.recv(), 20)
            check(False, f"corrupt: answered {got!r} instead of closing")
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            check(code == 1007, f"corrupt: close code {code}, expected 1007 ({closed})")
    finally:
        await ws.close()


# Offers a server must refuse (or parts it must ignore): RFC 7692 section 7.1 says a server
# declines an offer with an unknown parameter, a repeated one, or a bad value. websockets has
# no extension configured here, so it fails the handshake if the server accepts any of them.
INVALID_OFFERS = [
    "permessage-deflate; foo=1",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
    "x-webkit-deflate-frame",
]


async def case_refused(args):
    for offer in INVALID_OFFERS:
        try:
            ws = await connect(args.port, "/echo", extra_headers={"Sec-WebSocket-Extensions": offer})
        except Exception as e:  # noqa: BLE001 - any handshake failure is the finding
            check(False, f"offer {offer!r}: handshake failed: {e!r}")
            continue
        try:
            check_response(ws, None, f"offer {offer!r}")
            await echo(ws, None, text_payload(300), f"offer {offer!r}: echo")
        finally:
            await ws.close()
    # A refused first offer and an acceptable second one: the second is taken.
    ws = await connect(args.port, "/echo", ClientPerMessageDeflateFactory(), extra_headers={
        "Sec-WebSocket-Extensions": "permessage-deflate; foo=1"})
    try:
        exts = negotiated(ws)
        check(len(exts) == 1 and exts[0][0] == "permessage-deflate",
              f"fallback offer: expected permessage-deflate from the second offer, got {exts}")
        await echo(ws, None, text_payload(300), "fallback offer: echo")
    finally:
        await ws.close()


async def case_off(args):
    ws = await connect(args.port, "/echo-off", ClientPerMessageDeflateFactory())
    try:
        check_response(ws, None, "/echo-off")
        await echo(ws, None, text_payload(64 * KIB), "/echo-off: echo")
    finally:
        await ws.close()


async def case_per_connection(args):
    ws = await connect(args.port, "/echo-lws", ClientPerMessageDeflateFactory())
    try:
        exts = negotiated(ws)
        check(len(exts) == 1 and exts[0][0] == "permessage-deflate",
              f"/echo-lws: expected permessage-deflate, got {exts}")
        rec = Recorder(ws)
        for size in [1, 200, 64 * KIB, MIB - KIB]:
            await echo(ws, rec, text_payload(size, seed=size), f"/echo-lws text {size} B")
        check(rec.frames and rec.frames[-1][1], "/echo-lws: the 1 MiB echo was not compressed")
    finally:
        await ws.close()


async def fan_client(port, topic, index):
    ws = await connect(port, "/mqtt", ClientPerMessageDeflateFactory())
    rec = Recorder(ws)
    await ws.send(f'{{"type":"subscribe","topic":"{topic}","id":"s{index}"}}')
    while True:  # the status frame comes first, then the ack
        frame = await asyncio.wait_for(ws.recv(), 20)
        if f'"id":"s{index}"' in frame:
            check('"ack"' in frame, f"client {index}: subscribe answered {frame}")
            return ws, rec


async def case_fanout(args):
    import json
    topic = "fan/compressed"
    clients = await asyncio.gather(*(fan_client(args.port, topic, i) for i in range(args.clients)))
    try:
        for ws, _ in clients:
            check_response(ws, expected_params(), "fan-out client")
        for size in [200, 256 * KIB]:
            payload = text_payload(size, seed=size)
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(args.broker_port),
                            "-t", topic, "-s"], input=payload.encode(), check=True, timeout=20)
            got = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 30) for ws, _ in clients))
            for index, ((_, rec), frame) in enumerate(zip(clients, got)):
                m = json.loads(frame)
                check(m.get("type") == "message" and m.get("payload") == payload,
                      f"client {index}: {size} B payload differs: {frame[:120]}")
                check(rec.last_rsv1() is True, f"client {index}: {size} B message not compressed")
    finally:
        await asyncio.gather(*(ws.close() for ws, _ in clients))


CASES = {
    "offers": case_offers, "window8": case_window8, "configured_window": case_configured_window,
    "echo": case_echo, "too_big": case_too_big, "corrupt": case_corrupt,
    "refused": case_refused, "off": case_off, "per_connection": case_per_connection,
    "fanout": case_fanout,
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--broker-port", type=int)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    try:
        asyncio.run(asyncio.wait_for(CASES[args.case](args), 50))
    except Exception as e:  # noqa: BLE001 - reported as a failure with its type
        check(False, f"{args.case}: {type(e).__name__}: {e}")
    print(f"{args.case}: websockets {websockets.__version__}: "
          f"{'OK' if not failures else f'{len(failures)} failure(s)'}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
