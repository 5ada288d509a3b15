#!/usr/bin/python3
"""wss:// against a running wsbridge with python3-websockets (Debian's) and Python's ssl module,
clients nobody on this project wrote. Run by tests/integration/tls_foreign_test.cpp, which starts
wsbridge with a TLS listener and a certificate from a test CA generated at test time:

    websockets_client.py --port P --ca CA_FILE --other-ca OTHER_CA_FILE

Exit status 0 when every check holds; otherwise the failed checks are printed.
"""
import argparse
import asyncio
import os
import ssl
import sys

import websockets

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def context(ca_file):
    ctx = ssl.create_default_context(cafile=ca_file)  # verifies the chain and the host name
    ctx.set_alpn_protocols(["h2", "http/1.1"])  # WebSockets stay on http/1.1 (#15.6)
    return ctx


async def echo_round_trip(port, ca):
    uri = f"wss://localhost:{port}/echo"
    async with websockets.connect(uri, ssl=context(ca), compression="deflate") as ws:
        tls = ws.transport.get_extra_info("ssl_object")
        check(tls is not None, "the connection is TLS")
        check(tls.version() in ("TLSv1.2", "TLSv1.3"), f"TLS version {tls.version()}")
        check(tls.selected_alpn_protocol() == "http/1.1", f"ALPN {tls.selected_alpn_protocol()}")
        cert = tls.getpeercert()
        subject = dict(item[0] for item in cert["subject"])
        check(subject.get("commonName") == "localhost", f"certificate subject {subject}")
        extensions = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        check(extensions.startswith("permessage-deflate"),
              f"permessage-deflate negotiated over TLS: {extensions!r}")
        check(any(e.name == "permessage-deflate" for e in ws.extensions),
              "websockets runs the deflate extension")
        for size in (1, 200, 16 * 1024, 300 * 1024):
            text = ("sensor kitchen 21.5 ok " * (size // 23 + 1))[:size]
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), 10)
            check(got == text, f"text echo of {size} B")
        data = os.urandom(100 * 1024)
        await ws.send(data)
        got = await asyncio.wait_for(ws.recv(), 10)
        check(got == data, "binary echo of 100 KiB random bytes")
        await ws.close()
        check(ws.close_code == 1000, f"closed with {ws.close_code}")


async def untrusted_ca_is_refused(port, other_ca):
    try:
        async with websockets.connect(f"wss://localhost:{port}/echo", ssl=context(other_ca)):
            check(False, "a client trusting another CA was served")
    except ssl.SSLCertVerificationError:
        check(True, "a client trusting another CA refuses the certificate")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--other-ca", required=True)
    args = parser.parse_args()
    await asyncio.wait_for(echo_round_trip(args.port, args.ca), 40)
    await asyncio.wait_for(untrusted_ca_is_refused(args.port, args.other_ca), 10)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # any exception is a failed check, reported with the others
        check(False, f"{type(e).__name__}: {e}")
    print(f"websockets over TLS: {len(failures)} failure(s)" if failures else "websockets over TLS: OK")
    sys.exit(1 if failures else 0)
