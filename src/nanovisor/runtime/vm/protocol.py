"""Frames spoken with the guest agent over virtio-serial (mirror of guest/agent/protocol.h).

Also used on the shim's control socket for exec streams, so one codec serves both hops.
"""

from __future__ import annotations

import struct

HDR = struct.Struct("<B3xII")  # type, pad, id, len

READY, CREATED, STDOUT, STDERR, EXIT, REPLY, ALIVE = b"R", b"c", b"O", b"e", b"x", b"r", b"h"
CREATE, START, EXEC, STDIN, KILL, RESIZE, STATS, PS = b"C", b"G", b"X", b"I", b"K", b"W", b"S", b"P"
DNS = b"D"  # both ways: a DNS message the agent took on the guest's 127.0.0.11, and netd's answer


def frame(kind: bytes, ident: int, payload: bytes = b"") -> bytes:
    return HDR.pack(kind[0], ident, len(payload)) + payload


def kv(pairs: list[tuple[str, str]]) -> bytes:
    """key\\0value\\0 ... — the agent's process/config encoding (no JSON parser in the guest)."""
    out = bytearray()
    for k, v in pairs:
        if "\0" in k or "\0" in v:
            raise ValueError(f"NUL byte in {k!r}")
        out += k.encode() + b"\0" + v.encode() + b"\0"
    return bytes(out)


class Decoder:
    """Incremental frame parser: feed bytes, get (type, id, payload) tuples."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= HDR.size:
            t, ident, n = HDR.unpack_from(self.buf)
            if len(self.buf) < HDR.size + n:
                break
            out.append((bytes([t]), ident, bytes(self.buf[HDR.size:HDR.size + n])))
            del self.buf[:HDR.size + n]
        return out
