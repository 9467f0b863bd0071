"""Just enough of the DNS wire format (RFC 1035) to answer A/AAAA/PTR for container names and relay the
rest: parsing one question and building a response. No compression beyond pointing at the question."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

A, PTR, AAAA = 1, 12, 28
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5


@dataclass
class Query:
    id: int
    flags: int
    name: str        # lower case, no trailing dot
    qtype: int
    qclass: int
    question: bytes  # the raw question section, echoed back


def parse(data: bytes) -> Query | None:
    """The first question of a standard query, or None for anything we should not answer."""
    if len(data) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", data[:6])
    if flags & 0x8000 or (flags >> 11) & 0xF or qd < 1:
        return None
    pos, labels = 12, []
    while True:
        if pos >= len(data):
            return None
        n = data[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 or pos + 1 + n > len(data):
            return None
        labels.append(data[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    if pos + 4 > len(data):
        return None
    qtype, qclass = struct.unpack("!HH", data[pos:pos + 4])
    return Query(qid, flags, ".".join(labels).lower(), qtype, qclass, data[12:pos + 4])


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        raw = label.encode()
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def response(q: Query, rcode: int = NOERROR, addrs: list[str] = (), ptr: str | None = None,
             ttl: int = 600, recursion: bool = False) -> bytes:
    flags = 0x8000 | 0x0400 | (q.flags & 0x0100) | (0x0080 if recursion else 0) | rcode
    answers = []
    for a in addrs:
        ip = ipaddress.ip_address(a)
        rtype = A if ip.version == 4 else AAAA
        answers.append(struct.pack("!HHHIH", 0xC00C, rtype, 1, ttl, len(ip.packed)) + ip.packed)
    if ptr:
        rdata = _encode_name(ptr)
        answers.append(struct.pack("!HHHIH", 0xC00C, PTR, 1, ttl, len(rdata)) + rdata)
    head = struct.pack("!HHHHHH", q.id, flags, 1, len(answers), 0, 0)
    return head + q.question + b"".join(answers)


def reverse_name(name: str) -> str | None:
    """'4.3.2.1.in-addr.arpa' -> '1.2.3.4'."""
    suffix = ".in-addr.arpa"
    if not name.endswith(suffix):
        return None
    parts = name[:-len(suffix)].split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    return ".".join(reversed(parts))
