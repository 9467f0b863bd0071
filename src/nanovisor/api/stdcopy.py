"""Docker's stdcopy framing: an 8-byte header [stream, 0, 0, 0, size big-endian u32] before each chunk.

Used for attach, exec and logs when the container has no TTY, so clients can tell stdout from stderr.
"""

from __future__ import annotations

import struct

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
_MAX = 0xFFFFFFFF


def frame(stream: int, data: bytes) -> bytes:
    """One frame (or several, for a chunk larger than 4 GiB - 1 bytes)."""
    if len(data) <= _MAX:
        return struct.pack(">BxxxL", stream, len(data)) + data
    return b"".join(frame(stream, data[i:i + _MAX]) for i in range(0, len(data), _MAX))


def parse(buf: bytes) -> list[tuple[int, bytes]]:
    """Split a complete multiplexed byte string back into (stream, data) pairs (for tests and tools)."""
    out, i = [], 0
    while i + 8 <= len(buf):
        stream, size = struct.unpack(">BxxxL", buf[i:i + 8])
        out.append((stream, buf[i + 8:i + 8 + size]))
        i += 8 + size
    if i != len(buf):
        raise ValueError("truncated stdcopy frame")
    return out
