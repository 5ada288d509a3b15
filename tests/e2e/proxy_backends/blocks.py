"""The tests' deterministic bulk data (the same in proxy_support.mjs): a 1 MiB block made of
SHA-256 digests, and block i of a stream is that block with its first 8 bytes replaced by i
(big-endian), so a lost, repeated or reordered block changes the stream's hash."""
import hashlib

BLOCK_SIZE = 1 << 20
BASE = b"".join(hashlib.sha256(b"wsbridge-proxy-%d" % k).digest() for k in range(BLOCK_SIZE // 32))


def block(i, size=BLOCK_SIZE):
    return (i.to_bytes(8, "big") + BASE[8:])[:size]


def stream_blocks(total):
    """The blocks of a `total`-byte stream (the last one cut short)."""
    i = 0
    while total > 0:
        n = min(total, BLOCK_SIZE)
        yield block(i, n)
        total -= n
        i += 1
