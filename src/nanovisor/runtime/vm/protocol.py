"""Frames spoken with the guest agent over virtio-serial — the one definition of the wire format.

Every frame: a 12-byte header (type, 3 pad bytes, u32 id, u32 len, little endian) then len payload bytes. The C
side (agent, fast path, C shim) includes protocol.h, which guest.py generates from this module at build time
(`c_header()`), so the two cannot drift apart. Also used on the shim's control socket for exec streams, so one
codec serves both hops.
"""

from __future__ import annotations

import struct

HDR = struct.Struct("<B3xII")  # type, pad, id, len
MAX_PAYLOAD = 1 << 20
HEARTBEAT_MS = 5000  # the agent sends ALIVE after this long without traffic

# name -> (type byte, direction and payload); the order is the header's
FRAMES: dict[str, tuple[bytes, str]] = {
    "READY": (b"R", "guest -> host: agent up; payload: kernel release"),
    "CREATED": (b"c", "guest -> host: id: process; payload empty = ok, else error text"),
    "STDOUT": (b"O", "guest -> host"),
    "STDERR": (b"e", "guest -> host"),
    "EXIT": (b"x", "guest -> host: payload: decimal wait status"),
    "REPLY": (b"r", "guest -> host: reply to stats/ps; id echoes the request id"),
    "ALIVE": (b"h", "guest -> host: sent after HEARTBEAT_MS without traffic: the guest is alive"),
    "CREATE": (b"C", "host -> guest: id 0: main process; payload: key\\0value\\0 pairs"),
    "START": (b"G", "host -> guest"),
    "EXEC": (b"X", "host -> guest: id: new process id; payload like CREATE (process keys only)"),
    "STDIN": (b"I", "host -> guest: len 0 = close stdin"),
    "KILL": (b"K", "host -> guest: payload: \"signal all\""),
    "RESIZE": (b"W", "host -> guest: payload: \"rows cols\""),
    "STATS": (b"S", "host -> guest"),
    "PS": (b"P", "host -> guest"),
    "UPDATE": (b"U", "host -> guest: id: request; payload: \"key=value;...\" cgroup files; REPLY: \"\" or error"),
    "NET": (b"N", "host -> guest: id: request; payload: \"key=value;...\" live network changes (macvlan, flush, "
                  "routes, route: see net.h); REPLY: \"\" or error"),
    "DNS": (b"D", "both ways: a DNS message the agent took on the guest's 127.0.0.11, or netd's answer"),
}

READY, CREATED, STDOUT, STDERR, EXIT, REPLY, ALIVE = (FRAMES[n][0] for n in (
    "READY", "CREATED", "STDOUT", "STDERR", "EXIT", "REPLY", "ALIVE"))
CREATE, START, EXEC, STDIN, KILL, RESIZE, STATS, PS, DNS = (FRAMES[n][0] for n in (
    "CREATE", "START", "EXEC", "STDIN", "KILL", "RESIZE", "STATS", "PS", "DNS"))


def c_header() -> str:
    """protocol.h for the C side, generated from the definitions above."""
    lines = [
        "/* GENERATED from src/nanovisor/runtime/vm/protocol.py by guest.py at build time: do not edit. */",
        "#ifndef NV_PROTOCOL_H", "#define NV_PROTOCOL_H", "#include <stdint.h>", "",
        "struct nv_hdr {", "    uint8_t type;", "    uint8_t pad[3];", "    uint32_t id;", "    uint32_t len;",
        "} __attribute__((packed));", "",
        f"#define NV_MAX_PAYLOAD {MAX_PAYLOAD}u", f"#define NV_HEARTBEAT_MS {HEARTBEAT_MS}",
        f"_Static_assert(sizeof(struct nv_hdr) == {HDR.size}, \"header size\");", "",
    ]
    for name, (byte, doc) in FRAMES.items():
        lines.append(f"#define NV_{name:<8} '{byte.decode()}' /* {doc} */")
    return "\n".join([*lines, "", "#endif", ""])


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
