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
import itertools
import json
import subprocess
import sys

import websockets
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from deflate_checks import (KIB, MIB, Recorder, binary_payload, check, check_response, connect,
                            echo, expect_close, expect_compressed, expected_params, failures,
                            negotiated,
                            random_bytes, text_payload, window_probe)


# ---- cases -------------------------------------------------------------------------------

def every_offer():
    """(label, factory arguments, expected server_max_window_bits in the response) for every
    combination of the four parameters a client can offer: each *_no_context_takeover absent or
    present, server_max_window_bits absent or 9..15 (8 has its own case), client_max_window_bits
    absent, present without a value, or 9..15 (websockets' zlib cannot deflate with 8 itself)."""
    windows = [None, 9, 10, 11, 12, 13, 14, 15]
    for snct, cnct, smwb, cmwb in itertools.product([False, True], [False, True], windows,
                                                    [None, True] + windows[1:]):
        kwargs = {"server_no_context_takeover": snct, "client_no_context_takeover": cnct,
                  "server_max_window_bits": smwb, "client_max_window_bits": cmwb}
        label = "; ".join(["offer permessage-deflate"] +
                          [k if v is True else f"{k}={v}" for k, v in kwargs.items() if v])
        yield label, kwargs, smwb


async def exchange_compressed(ws, rec, label, window_bits=15, compressed=True):
    """`compressed`: what the server frames' RSV1 must be (None: not checked)."""
    await echo(ws, rec, text_payload(200), f"{label}: 200 B text", compressed)
    await echo(ws, rec, binary_payload(16 * KIB), f"{label}: 16 KiB binary", compressed)
    # Twice: a server keeping its context across messages would be caught by a client that
    # resets its inflater for every message (server_no_context_takeover was negotiated).
    await echo(ws, rec, text_payload(5000, seed=7), f"{label}: 5000 B text", compressed)
    await echo(ws, rec, text_payload(5000, seed=7), f"{label}: same again", compressed)
    if window_bits < 15:
        await echo(ws, rec, window_probe(window_bits), f"{label}: window probe", compressed)


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
    for label, kwargs, smwb in every_offer():
        await offer_and_exchange(args.port, "/echo", label, kwargs, smwb)


async def case_window8(args):
    """server_max_window_bits=8: zlib cannot deflate raw with a 256-byte window, so the server
    may decline the offer, or accept it and send such a session uncompressed frames (what the
    core does), or deflate with 9 bits (zlib never reaches back more than 2**9 - 262 bytes).
    Whichever: every message round-trips and no compressed frame needs more than 8 bits."""
    label = "server_max_window_bits=8"
    ws = await connect(args.port, "/echo", ClientPerMessageDeflateFactory(server_max_window_bits=8))
    try:
        rec = Recorder(ws, 8)
        if negotiated(ws):
            if check_response(ws, expected_params(8), label):
                await exchange_compressed(ws, rec, label, 8, compressed=None)
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
        # A compressed message in fragments (one deflate stream across frames, RSV1 on the
        # first only): the server inflates it whole.
        parts = [text_payload(100 * KIB, seed=s) for s in (31, 32, 33)]
        await ws.send(iter(parts))
        got = await asyncio.wait_for(ws.recv(), 20)
        check(got == "".join(parts), f"fragmented 300 KiB text: echo differs ({len(got)})")
        # The RSV1 checks are only worth something if both kinds of frame were seen.
        rsv1 = {r for _, r, _ in rec.frames}
        check(rsv1 == {True, False}, f"RSV1 values seen: {rsv1}")
    finally:
        await ws.close()


async def case_too_big(args):
    """/echo allows 1 MiB: compressed messages that inflate past it close with 1009 (a few KiB on
    the wire, so only the inflated size can trip the limit); one just under passes first."""
    for label, message in [("zeros 1 MiB + 1", b"\0" * (MIB + 1)),
                           ("text 4 MiB", text_payload(4 * MIB)),
                           ("fragments: 8 of 128 KiB + 1 B", [b"\0" * (128 * KIB)] * 8 + [b"\0"])]:
        ws = await connect(args.port, "/echo", ClientPerMessageDeflateFactory())
        try:
            await echo(ws, None, b"\0" * MIB, f"{label}: exactly 1 MiB first")
            await ws.send(iter(message) if isinstance(message, list) else message)
            await expect_close(ws, 1009, label)
        finally:
            await ws.close()


async def case_corrupt(args):
    """A compressed message whose deflate data is invalid (reserved block type), and a compressed
    text message that inflates to invalid UTF-8, each close with 1007."""
    for label in ["deflate data that does not inflate", "text that inflates to invalid UTF-8"]:
        ws = await connect(args.port, "/echo", ClientPerMessageDeflateFactory())
        try:
            await echo(ws, None, text_payload(300), f"{label}: an echo first")
            if label.startswith("deflate"):
                ext = ws.extensions[0]
                ext.encode = lambda f: dataclasses.replace(f, rsv1=True, data=b"\x07\xff\xff\xff")
                await ws.send("this message will not inflate")
            else:  # a text frame through websockets' own deflate, bypassing its UTF-8 encoding
                await ws.write_frame(True, 0x1, b"valid, then not: \xc3\x28" + b"a" * 300)
            await expect_close(ws, 1007, label)
        finally:
            await ws.close()


async def case_interleaved(args):
    """Compressed messages in fragments from several clients at once, their frames interleaved
    (the server runs one thread here, so one inflater serves them all): each client's message
    must inflate on its own, and whole messages from others in between too."""
    clients = [await connect(args.port, "/echo", ClientPerMessageDeflateFactory()) for _ in range(3)]
    try:
        for c, ws in enumerate(clients):
            check_response(ws, expected_params(), f"client {c}")
        parts = [[text_payload(20000, seed=10 * c + i) for i in range(3)] for c in range(3)]
        for i in range(3):  # fragment i of every client's message, in turn
            for c, ws in enumerate(clients[:2]):
                await ws.write_frame(i == 2, 0x1 if i == 0 else 0x0, parts[c][i].encode())
            # A whole message from the third client between the fragments.
            await echo(clients[2], None, parts[2][i], f"whole message {i} between fragments")
        for c, ws in enumerate(clients[:2]):
            got = await asyncio.wait_for(ws.recv(), 20)
            check(got == "".join(parts[c]), f"client {c}: fragmented echo differs ({len(got)} B)")
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


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
    """compression = "per_connection" (served as "shared"; it was lws' own deflate, which aborted
    the process on ordinary messages): whatever it answers to an offer, the
    connection must work: the response must be one websockets accepts (RFC 7692) and compressed
    messages, also ones that repeat an earlier message (context takeover), must round-trip."""
    for label, kwargs in [("default offer", {}),
                          ("server_no_context_takeover", {"server_no_context_takeover": True}),
                          ("client_no_context_takeover", {"client_no_context_takeover": True}),
                          ("server_max_window_bits=10", {"server_max_window_bits": 10})]:
        label = f"/echo-lws {label}"
        try:
            ws = await connect(args.port, "/echo-lws", ClientPerMessageDeflateFactory(**kwargs))
        except Exception as e:  # noqa: BLE001
            check(False, f"{label}: handshake failed: {type(e).__name__}: {e}")
            continue
        try:
            exts = negotiated(ws)
            # Declining an offer it cannot honour is fine; the browsers' offer must be taken.
            if not kwargs or exts:
                check(len(exts) == 1 and exts[0][0] == "permessage-deflate",
                      f"{label}: expected permessage-deflate, got {exts}")
            rec = Recorder(ws)
            for size in [1, 200, 5000, 5000, 64 * KIB, MIB - KIB]:
                await echo(ws, rec, text_payload(size, seed=size), f"{label} text {size} B")
            if exts:
                check(rec.frames and rec.frames[-1][1], f"{label}: the 1 MiB echo was not compressed")
        except ConnectionClosed as closed:
            check(False, f"{label}: connection closed: {closed}")
        finally:
            await ws.close()


# The fan-out's clients by index % 4: three parameter sets (so the server needs a shared variant
# per window) and one that offers nothing: (server_max_window_bits offered, deflate offered).
FAN_KINDS = [(None, True), (10, True), (9, True), (None, False)]


async def fan_client(port, topic, index):
    smwb, offered = FAN_KINDS[index % len(FAN_KINDS)]
    factory = ClientPerMessageDeflateFactory(server_max_window_bits=smwb) if offered else None
    ws = await connect(port, "/mqtt", factory)
    check_response(ws, expected_params(smwb) if offered else None, f"fan-out client {index}")
    rec = Recorder(ws, smwb or 15) if offered else None
    await ws.send(f'{{"type":"subscribe","topic":"{topic}","id":"s{index}"}}')
    while True:  # the status frame comes first, then the ack
        frame = await asyncio.wait_for(ws.recv(), 20)
        if f'"id":"s{index}"' in frame:
            check('"ack"' in frame, f"client {index}: subscribe answered {frame}")
            return ws, rec


async def case_fanout(args):
    """Clients with deflate (default, server_max_window_bits 10 and 9) and without, on one MQTT
    topic; mosquitto_pub publishes compressible text of 200 B and 256 KiB, and a window probe:
    every client gets each byte-exact, compressed (within its window) when it agreed to deflate."""
    topic = "fan/compressed"
    clients = await asyncio.gather(*(fan_client(args.port, topic, i) for i in range(args.clients)))
    try:
        # A window probe as text: 600 random hex digits twice, a distance only a deflater with
        # more than 9 bits can reach back (zlib's 9-bit one stops at 250).
        probe = random_bytes(300, seed=9).hex() * 2 + text_payload(4 * KIB)
        for payload in [text_payload(200, seed=200), text_payload(256 * KIB, seed=256), probe]:
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(args.broker_port),
                            "-t", topic, "-s"], input=payload.encode(), check=True, timeout=20)
            got = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 30) for ws, _ in clients))
            for index, ((_, rec), frame) in enumerate(zip(clients, got)):
                m = json.loads(frame)
                check(m.get("type") == "message" and m.get("payload") == payload,
                      f"client {index}: {len(payload)} B payload differs: {frame[:120]}")
                if rec is not None:
                    check(rec.last_rsv1() is True,
                          f"client {index}: {len(payload)} B message not compressed")
    finally:
        await asyncio.gather(*(ws.close() for ws, _ in clients))


CASES = {
    "offers": case_offers, "window8": case_window8, "configured_window": case_configured_window,
    "echo": case_echo, "too_big": case_too_big, "corrupt": case_corrupt,
    "interleaved": case_interleaved, "refused": case_refused, "off": case_off,
    "per_connection": case_per_connection, "fanout": case_fanout,
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
