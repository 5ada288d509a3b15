"""Checks shared by the python3-websockets compression tests (websockets_client.py): payloads,
what the contract (issue #20) says a server frame and the handshake response must be, and a
recorder of the RSV1 bits websockets reads off the wire."""
import asyncio
import random
import zlib

import websockets
from websockets.exceptions import ConnectionClosed
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


async def expect_close(ws, code, label):
    """The server closes `ws` with `code` instead of answering what was just sent."""
    try:
        got = await asyncio.wait_for(ws.recv(), 20)
        check(False, f"{label}: answered {len(got)} bytes instead of closing with {code}")
    except ConnectionClosed as closed:
        rcvd = closed.rcvd.code if closed.rcvd else None
        check(rcvd == code, f"{label}: close code {rcvd}, expected {code} ({closed})")


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
