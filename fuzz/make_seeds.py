#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (python3; the JWT seeds need the
`cryptography` package). Rerunning it rewrites the same files; only the RS256/PS256 seeds change,
as their RSA key is generated anew each time (the other keys are derived from fixed strings and
match the keys built into fuzz_jwt.cpp). It never deletes files: remove a target's folder first to
drop seeds that are no longer written here."""

import base64
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 4096, (target, name, len(data))
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---- fuzz_protocol -------------------------------------------------------------------------------
PROTOCOL = {
    "ping": '{"type":"ping"}',
    "ping-id": '{"type":"ping","id":7}',
    "subscribe": '{"type":"subscribe","id":"s1","topic":"sensors/+/temp","qos":1}',
    "subscribe-hash": '{"type":"subscribe","id":3,"topic":"$SYS/#","qos":0}',
    "unsubscribe": '{"type":"unsubscribe","id":2,"topic":"sensors/#"}',
    "publish-json": '{"type":"publish","id":"p1","topic":"cmd/lamp","payload":{"on":true,"level":0.5},"qos":1,"retain":true}',
    "publish-string": '{"type":"publish","topic":"a/b","payload":"hello \\u00e9 \\n"}',
    "publish-json-string": '{"type":"publish","topic":"a/b","payload":"{\\"x\\":[1,2]}"}',
    "publish-b64": '{"type":"publish","topic":"bin","payload_b64":"AAECA/8="}',
    "publish-b64-invalid-utf8": '{"type":"publish","topic":"bin","payload_b64":"/w=="}',
    "publish-array": '{"type":"publish","topic":"x","payload":[1,2.5e3,null,"\\u00fc",-0]}',
    "publish-empty": '{"type":"publish","topic":"x","payload":""}',
    "bad-topic-wildcard": '{"type":"publish","topic":"a/#","payload":1}',
    "bad-filter": '{"type":"subscribe","topic":"a/b#"}',
    "bad-both-payloads": '{"type":"publish","topic":"t","payload":"x","payload_b64":"eA=="}',
    "bad-qos": '{"type":"subscribe","topic":"t","qos":3}',
    "bad-qos-float": '{"type":"subscribe","topic":"t","qos":1.0}',
    "bad-type": '{"type":"foo","id":"x"}',
    "bad-id": '{"id":{"a":1},"type":"ping"}',
    "bad-retain": '{"type":"publish","topic":"t","retain":"yes"}',
    "bad-b64": '{"type":"publish","topic":"t","payload_b64":"!!"}',
    "not-object": "[1,2]",
    "not-json": "{type: ping}",
    "nested": '{"type":"publish","topic":"d","payload":{"a":{"b":{"c":[[[{}]]]}}}}',
}

# ---- fuzz_topics: filter \n filter \n topic --------------------------------------------------------
TOPICS = {
    "plus": "sensors/+/temp\nsensors/kitchen/temp\nsensors/kitchen/temp",
    "hash-covers-plus": "#\na/+/c\na/b/c",
    "hash-parent": "a/#\na\na",
    "plus-hash-vs-hash": "+/#\n#\nx",
    "empty-levels": "/+/#\n/#\n/",
    "dollar": "$SYS/#\n#\n$SYS/broker/load",
    "dollar-plus": "+/x\n$SYS/x\n$SYS/x",
    "plus-hash-vs-a-hash": "a/+/#\na/#\na",
    "double-slash": "a//b\na/+/b\na//b",
    "plus-vs-plus-plus": "+\n+/+\n/",
    "utf8": "\u00fc/\u65e5\u672c/+\n\u00fc/\u65e5\u672c/\U0001F600\n\u00fc/\u65e5\u672c/\U0001F600",
    "invalid-hash": "a/b#\na/#\na/b",
    "invalid-plus": "sport+/x\n#\nsport+/x",
    "deep": "a/+/+/#\n+/b/+/d\na/b/c/d",
    "same": "x/y\nx/y\nx/y",
    "trailing-slash": "a/\na/+\na/",
    "only-slashes": "//\n+/+/+\n//",
}

# ---- fuzz_frames: chunk sizes come from the first bytes -----------------------------------------


def ws_frame(opcode, payload, masked=True, fin=True, key=b"\x11\x22\x33\x44", long_length=False):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if long_length:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    elif n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if masked:
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


HTTP_HEAD = (
    "GET /mqtt HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "{protocol}Origin: http://localhost:8080\r\n\r\n"
)


def http(protocol_line):
    return HTTP_HEAD.replace("{protocol}", protocol_line).encode()


FRAMES = {
    "masked-text": ws_frame(1, b"hello"),
    "masked-several": ws_frame(1, b"a") + ws_frame(2, bytes(range(40))) + ws_frame(9, b"") + ws_frame(8, b"\x03\xe8"),
    "masked-126": ws_frame(2, b"x" * 200),
    "masked-127": ws_frame(2, b"y" * 300, long_length=True),
    "masked-fragments": ws_frame(1, b"part1", fin=False) + ws_frame(0, b"part2"),
    "unmasked-first": ws_frame(1, b"hello", masked=False),
    "unmasked-after-masked": ws_frame(1, b"ok") + ws_frame(1, b"bad", masked=False) + ws_frame(1, b"ok"),
    "unmasked-126": ws_frame(2, b"z" * 130) + ws_frame(2, b"z" * 130, masked=False),
    "chunks-1": b"\x00\x01" + ws_frame(1, b"abc") + ws_frame(1, b"def", masked=False),
    "chunks-mixed": b"\x03\x01\x02\x05" + ws_frame(1, b"abcdef") + ws_frame(1, b"g", masked=False),
    "http-bearer-only": http("Sec-WebSocket-Protocol: bearer.eyJhbGciOiJIUzI1NiJ9.e30.sig\r\n"),
    "http-bearer-and-mqtt": http("Sec-WebSocket-Protocol: mqtt, bearer.abc.def.ghi\r\n"),
    "http-bearer-middle": http("sec-websocket-protocol:chat,bearer.tok,json\r\n"),
    "http-bearer-twice": http("Sec-WebSocket-Protocol: bearer.one, bearer.two, v1\r\n"),
    "http-no-bearer": http("Sec-WebSocket-Protocol: mqtt, chat\r\n"),
    "http-bearer-empty": http("Sec-WebSocket-Protocol: bearer., x\r\n"),
    "http-bearer-many-kept": http("Sec-WebSocket-Protocol: a, b, c, d, e, bearer.tok\r\n"),
    "http-two-lines": http("Sec-WebSocket-Protocol: x\r\nSec-WebSocket-Protocol: bearer.t\r\n"),
    "http-truncated": http("Sec-WebSocket-Protocol: chat, bearer.tok")[:150],
    "http-then-frames": http("Sec-WebSocket-Protocol: mqtt, bearer.t\r\n") + ws_frame(1, b"{}"),
}

# ---- fuzz_config -----------------------------------------------------------------------------------
LISTENER = '[[listeners]]\nport = 8080\n'
ECHO = '[[routes]]\npath = "/echo"\nadapter = "echo"\n'
UPSTREAM = '[upstreams.local]\nuri = "tcp://127.0.0.1:1883"\n'
MQTT_ROUTE = '[[routes]]\npath = "/mqtt"\nadapter = "mqtt"\nupstream = "local"\nallow_subscribe = ["#"]\nallow_publish = ["#"]\n'
SECRET = "wsbridge-fuzz-hmac-secret-0123456789abcdef"

CONFIGS = {
    "minimal": LISTENER + ECHO,
    "all-core-keys": '''[server]
log_level = "debug"
log_format = "json"
index_file = "index.html"
shutdown_timeout = "1500ms"

[admin]
address = "127.0.0.1"
port = 9090
token = "operator-token"

[limits]
max_connections = 100
max_connections_per_ip = 10
handshake_timeout = "5s"

[[listeners]]
address = "::1"
port = 9001
permessage_deflate = true
allowed_origins = ["https://app.example.com", "https://*.example.com"]
allow_missing_origin = false

[[routes]]
path = "/a/b"
adapter = "echo"
prefix = ">"
max_message_bytes = "64KiB"
max_queued_bytes = 4096
ping_interval = 2
idle_timeout = "5s"
subprotocols = ["chat", "json"]
rate = 10.5
burst = 20
''',
    "mqtt": LISTENER + UPSTREAM + MQTT_ROUTE,
    "mqtt-full": LISTENER + '''[upstreams.b]
uri = "ssl://broker.example:8883"
client_id_prefix = "wsb"
username = "bridge"
password_env = "WSBRIDGE_FUZZ_UNSET"
keepalive = "45s"
mqtt_version = "5"
verify_server = false
reconnect_min = "100ms"
reconnect_max = "1m"
connect_timeout = 3
max_buffered_publishes = 10
max_retained_cache = 5

[[routes]]
path = "/json"
adapter = "mqtt"
upstream = "b"
mode = "json"
topic_prefix = "demo/"
allow_subscribe = ["sensors/#", "users/{user}/#", "org/{claim.org}/+"]
allow_publish = ["cmd/+"]
max_subscriptions = 5
max_qos = 1

[[routes]]
path = "/raw"
adapter = "mqtt"
upstream = "b"
mode = "raw"
subscribe = ["feed/#"]
publish_topic = "in/raw"
qos = 1
retain = true
''',
    "auth": f'''[jwt.main]
secret = "{SECRET}"
algorithms = ["HS256", "HS512"]
issuer = "https://issuer.example"
audience = ["wsbridge"]
leeway = "10s"
require_exp = false

[[api_keys]]
name = "dashboard"
sha256 = "{hashlib.sha256(b"key").hexdigest()}"
claims = {{ role = "viewer", level = 3, admin = false }}
allow_subscribe = ["sensors/#"]
allow_publish = []

''' + LISTENER + UPSTREAM + '''[[routes]]
path = "/secure"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["#"]
[routes.auth]
jwt = "main"
api_keys = true
required = true
credentials = ["header", "query", "cookie", "subprotocol"]
query_param = "token"
cookie = "session"
allowed_users = ["alice", "dashboard"]
required_claims = { role = ["operator", "admin"] }
acl_claim = "mqtt"
allowed_origins = ["https://app.example.com"]
allow_missing_origin = true
''',
    "jwt-files": '[jwt.files]\npublic_key_file = "missing.pem"\njwks_file = "missing.json"\n' + LISTENER + ECHO,
    "secret-env": '[jwt.e]\nsecret_env = "WSBRIDGE_FUZZ_UNSET"\n' + LISTENER + ECHO,
    "err-syntax": LISTENER + '[[routes]\npath = "/x"\n',
    "err-unknown-key": LISTENER + ECHO + "colour = \"blue\"\n",
    "err-duplicate-path": LISTENER + ECHO + ECHO,
    "err-no-listener": ECHO,
    "err-unknown-adapter": LISTENER + '[[routes]]\npath = "/x"\nadapter = "nope"\n',
    "err-bad-path": LISTENER + '[[routes]]\npath = "/a/../b?x"\nadapter = "echo"\n',
    "err-reserved-path": LISTENER + '[[routes]]\npath = "/healthz"\nadapter = "echo"\n',
    "err-idle-le-ping": LISTENER + ECHO + 'ping_interval = "30s"\nidle_timeout = "10s"\n',
    "err-bad-duration": LISTENER + ECHO + 'ping_interval = "3 fortnights"\n',
    "err-bad-size": LISTENER + ECHO + 'max_message_bytes = "12XB"\n',
    "err-port": '[[listeners]]\nport = 70000\n' + ECHO,
    "err-mqtt-no-upstream": LISTENER + '[[routes]]\npath = "/m"\nadapter = "mqtt"\nupstream = "nope"\n',
    "err-mqtt-bad-acl": LISTENER + UPSTREAM + '[[routes]]\npath = "/m"\nadapter = "mqtt"\nupstream = "local"\nallow_subscribe = ["a/#/b"]\n',
    "err-upstream-uri": '[upstreams.x]\nuri = "http://x"\n' + LISTENER + ECHO,
    "err-short-secret": '[jwt.s]\nsecret = "short"\n' + LISTENER + ECHO,
    "err-types": '[server]\nlog_level = 3\n[limits]\nmax_connections = "many"\n' + LISTENER + ECHO,
    "inline-tables": 'listeners = [{ port = 1, address = "0.0.0.0" }]\nroutes = [{ path = "/e", adapter = "echo", prefix = "" }]\n',
}


# ---- fuzz_jwt -------------------------------------------------------------------------------------
def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_seeds():
    import hmac
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    now = 1893456000  # fuzz_jwt.cpp's clock: 2030-01-01T00:00:00Z
    claims = {"sub": "alice", "iat": now - 60, "exp": now + 3600, "role": "operator"}
    ec_key = ec.derive_private_key(
        int.from_bytes(hashlib.sha256(b"wsbridge-fuzz-ec-p256").digest(), "big"), ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"wsbridge-fuzz-ed25519").digest())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def signing_input(header, payload):
        return b64u(json.dumps(header, separators=(",", ":"))) + "." + b64u(
            json.dumps(payload, separators=(",", ":")))

    def hs(header, payload, secret=SECRET, digest="sha256"):
        si = signing_input(header, payload)
        return si + "." + b64u(hmac.new(secret.encode(), si.encode(), digest).digest())

    def es256(header, payload):
        si = signing_input(header, payload)
        r, s = decode_dss_signature(ec_key.sign(si.encode(), ec.ECDSA(hashes.SHA256())))
        return si + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def eddsa(header, payload):
        si = signing_input(header, payload)
        return si + "." + b64u(ed_key.sign(si.encode()))

    def rs(header, payload, pss=False):
        si = signing_input(header, payload)
        pad = (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if pss
               else padding.PKCS1v15())
        return si + "." + b64u(rsa_key.sign(si.encode(), pad, hashes.SHA256()))

    ec_numbers = ec_key.public_key().public_numbers()
    rsa_numbers = rsa_key.public_key().public_numbers()
    from cryptography.hazmat.primitives import serialization
    ed_x = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk_oct = {"kty": "oct", "kid": "oct1", "k": b64u(SECRET), "alg": "HS256"}
    jwk_ec = {"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig",
              "x": b64u(ec_numbers.x.to_bytes(32, "big")), "y": b64u(ec_numbers.y.to_bytes(32, "big"))}
    jwk_rsa = {"kty": "RSA", "kid": "rsa1", "key_ops": ["verify"],
               "n": b64u(rsa_numbers.n.to_bytes(256, "big")), "e": b64u(rsa_numbers.e.to_bytes(3, "big"))}
    jwk_ed = {"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": b64u(ed_x)}
    jwk_skip = {"kty": "EC", "crv": "P-521", "kid": "unsupported", "x": "AA", "y": "AA"}
    jwk_enc = {"kty": "oct", "use": "enc", "k": "AAAA"}

    def dump(doc):
        return json.dumps(doc, separators=(",", ":"))

    seeds = {
        "hs256": hs({"alg": "HS256", "typ": "JWT"}, claims),
        "hs256-kid": hs({"alg": "HS256", "kid": "hs-kid"}, claims),
        "hs384": hs({"alg": "HS384"}, claims, digest="sha384"),
        "hs512-issuer-aud": hs({"alg": "HS512"}, {"sub": "bob", "iss": "https://issuer.example",
                                                   "aud": ["x", "wsbridge"], "nbf": now - 5}, digest="sha512"),
        "es256": es256({"alg": "ES256", "typ": "JWT"}, claims),
        "es256-kid": es256({"alg": "ES256", "kid": "ec-kid"}, claims),
        "hs256-expired": hs({"alg": "HS256"}, {"sub": "alice", "exp": now - 3600}),
        "hs256-future-iat": hs({"alg": "HS256"}, {"sub": "alice", "exp": now + 60, "iat": now + 600}),
        "hs256-bad-sig": hs({"alg": "HS256"}, claims, secret="another-secret-another-secret-0123"),
        "hs256-unknown-kid": hs({"alg": "HS256", "kid": "nope"}, claims),
        "hs256-crit": hs({"alg": "HS256", "crit": ["exp"]}, claims),
        "hs256-sub-number": hs({"alg": "HS256"}, {"sub": 42, "exp": now + 60}),
        "hs256-exp-string": hs({"alg": "HS256"}, {"exp": "soon"}),
        "hs256-huge-exp": hs({"alg": "HS256"}, {"exp": 1e300}),
        "alg-none": b64u('{"alg":"none"}') + "." + b64u(dump(claims)) + ".",
        "alg-None-sig": b64u('{"alg":"None"}') + "." + b64u(dump(claims)) + ".AAAA",
        "alg-confusion": hs({"alg": "ES256"}, claims),
        "garbage-parts": "abc.def.ghi",
        "garbage-padding": "eyJhbGciOiJIUzI1NiJ9.e30=.sig=",
        "garbage-four-parts": "a.b.c.d",
        "garbage": "not a token",
        "jwks": dump({"keys": [jwk_oct, jwk_ec, jwk_rsa, jwk_ed, jwk_skip, jwk_enc]}),
        "jwk-single": dump(jwk_ec),
        "jwks-bad": dump({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
        "jwks-not-array": '{"keys":{}}',
        "pair-oct": hs({"alg": "HS256", "kid": "oct1"}, claims) + "\n" + dump({"keys": [jwk_oct]}),
        "pair-ec": es256({"alg": "ES256", "kid": "ec1"}, claims) + "\n" + dump({"keys": [jwk_ec]}),
        "pair-rs256": rs({"alg": "RS256", "kid": "rsa1"}, claims) + "\n" + dump({"keys": [jwk_rsa]}),
        "pair-ps256": rs({"alg": "PS256"}, claims, pss=True) + "\n" + dump({"keys": [jwk_rsa]}),
        "pair-eddsa": eddsa({"alg": "EdDSA", "kid": "ed1"}, claims) + "\n" + dump({"keys": [jwk_ed]}),
    }
    return seeds


# ---- fuzz_compression ----------------------------------------------------------------------------
def compression_seeds():
    import zlib

    def deflate(data, bits=15, level=6):
        c = zlib.compressobj(level, zlib.DEFLATED, -bits)
        out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4]

    telemetry = b'{"device":"pump-12","rpm":1480,"ok":true},' * 40
    return {
        "deflated-telemetry": deflate(telemetry),
        "deflated-window-9": deflate(telemetry, 9, 1),
        "deflated-zeros-bomb": deflate(bytes(200000)),
        "deflated-text": deflate("überall — 温度 21.5°C".encode() * 8),
        "final-block": b"\x03\x00",
        "reserved-block-type": deflate(b" " * 400) + b"\x06\x00\x00",
        "offer-chromium": "permessage-deflate; client_max_window_bits",
        "offer-windows": "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
        "offer-several": 'x-webkit-deflate-frame, permessage-deflate; server_max_window_bits="9"'
                         ", permessage-deflate",
        "offer-bad": "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    }


# ---- fuzz_mqtt_packets: a chunking seed byte, then a stream of MQTT packets ---------------------
def mqtt_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    if isinstance(s, str):
        s = s.encode()
    return len(s).to_bytes(2, "big") + s


def mqtt_packet(first, body):
    return bytes([first]) + mqtt_varint(len(body)) + body


def mqtt_props(*props):
    block = b"".join(props)
    return mqtt_varint(len(block)) + block


def mqtt_seeds():
    connect311 = mqtt_packet(0x10, mqtt_str("MQTT") + b"\x04\xc2\x00\x3c" + mqtt_str("abc")
                             + mqtt_str("user") + mqtt_str("pass"))
    connect31 = mqtt_packet(0x10, mqtt_str("MQIsdp") + b"\x03\x02\x00\x0a" + mqtt_str("c"))
    # MQTT 5 with Session Expiry, Receive Maximum, a User Property, and a will with Will Delay.
    connect5 = mqtt_packet(
        0x10, mqtt_str("MQTT") + b"\x05\xee\x00\x3c"
        + mqtt_props(b"\x11\x00\x00\x00\x1e", b"\x21\x00\x10", b"\x26" + mqtt_str("k") + mqtt_str("v"))
        + mqtt_str("client") + mqtt_props(b"\x18\x00\x00\x00\x05") + mqtt_str("will/t")
        + mqtt_str(b"\x00\xff") + mqtt_str("user") + mqtt_str("jwt.token"))
    connack5 = mqtt_packet(0x20, b"\x00\x00" + mqtt_props(b"\x22\x00\x0a", b"\x13\x00\x3c",
                                                         b"\x12" + mqtt_str("assigned")))
    publish311 = mqtt_packet(0x32, mqtt_str("a/b") + b"\x00\x0a" + b"hello")
    publish5 = mqtt_packet(0x3d, mqtt_str("") + b"\x00\x0b"
                           + mqtt_props(b"\x23\x00\x01", b"\x01\x01", b"\x0b\xc8\x01",
                                        b"\x09" + mqtt_str(b"\x01\x02"), b"\x03" + mqtt_str("text/plain"))
                           + b"payload")
    subscribe311 = mqtt_packet(0x82, b"\x00\x01" + mqtt_str("a/#") + b"\x01" + mqtt_str("$SYS/#") + b"\x00")
    subscribe5 = mqtt_packet(0x82, b"\x00\x02" + mqtt_props(b"\x0b\x07") + mqtt_str("a/+") + b"\x2d")
    suback = mqtt_packet(0x90, b"\x00\x01\x01\x80")
    suback5 = mqtt_packet(0x90, b"\x00\x02" + mqtt_props(b"\x1f" + mqtt_str("denied")) + b"\x00\x87")
    unsubscribe = mqtt_packet(0xa2, b"\x00\x03" + mqtt_str("a/#"))
    unsubscribe5 = mqtt_packet(0xa2, b"\x00\x03\x00" + mqtt_str("a/#") + mqtt_str("b"))
    unsuback5 = mqtt_packet(0xb0, b"\x00\x03\x00\x00\x11")
    acks = (mqtt_packet(0x40, b"\x00\x07") + mqtt_packet(0x50, b"\x00\x07\x87")
            + mqtt_packet(0x62, b"\x00\x07\x00\x00") + mqtt_packet(0x70, b"\x00\x07\x92"
            + mqtt_props(b"\x1f" + mqtt_str("gone"))))
    disconnect5 = mqtt_packet(0xe0, b"\x95" + mqtt_props(b"\x1f" + mqtt_str("too large")))
    ping = b"\xc0\x00\xd0\x00"
    big = mqtt_packet(0x30, mqtt_str("big") + b"x" * 300)  # two-byte remaining length
    return {
        "session-311": b"\x07" + connect311 + subscribe311 + publish311 + ping + unsubscribe
                       + b"\xe0\x00",
        "session-5": b"\x2a" + connect5 + subscribe5 + publish5 + acks + unsubscribe5
                     + disconnect5,
        "broker-5": b"\x13" + connack5 + suback5 + unsuback5 + publish5 + disconnect5,
        "broker-311": b"\x00" + b"\x20\x02\x00\x00" + suback + b"\xb0\x02\x00\x03" + publish311,
        "connect-31": b"\x01" + connect31,
        "big-publish": b"\x05" + big + big,
        "too-large": b"\x03" + b"\x30\xff\xff\x03" + b"x" * 20,
        "long-length": b"\x03" + b"\x30\x80\x80\x80\x80\x01",
        "type-zero": b"\x03" + ping + b"\x00\x00",
        "split-header": b"\xff" + publish311 + big[:2],
    }


def main():
    for name, text in PROTOCOL.items():
        write("fuzz_protocol", name + ".json", text)
    for name, text in TOPICS.items():
        write("fuzz_topics", name, text)
    for name, data in FRAMES.items():
        write("fuzz_frames", name, data)
    for name, data in compression_seeds().items():
        write("fuzz_compression", name, data)
    for name, data in mqtt_seeds().items():
        write("fuzz_mqtt_packets", name, data)
    for name, text in CONFIGS.items():
        write("fuzz_config", name + ".toml", text)
    with open(os.path.join(ROOT, "..", "conf", "wsbridge.toml"), "rb") as f:
        write("fuzz_config", "conf-wsbridge.toml", f.read())
    try:
        seeds = jwt_seeds()
    except ImportError:
        sys.exit("fuzz_jwt seeds need the python 'cryptography' package")
    for name, text in seeds.items():
        write("fuzz_jwt", name, text)


if __name__ == "__main__":
    main()
