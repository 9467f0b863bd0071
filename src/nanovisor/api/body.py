"""Request bodies: fixed Content-Length or chunked transfer encoding (the Go client streams tars chunked)."""

from __future__ import annotations

import io
import re
from email.message import Message
from typing import BinaryIO

from nanovisor.errors import FramingError

_DRAIN_LIMIT = 1 << 20
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,15}")   # Go's net/http: hex digits only, no sign, no 0x, < 2^60
_LENGTH = re.compile(r"[0-9]{1,18}")


def _declared_length(headers: Message) -> int:
    values = {v.strip() for v in headers.get_all("Content-Length") or []}
    if not values:
        return 0
    if len(values) > 1:
        raise FramingError("bad Content-Length: conflicting values")
    value = values.pop()
    if not _LENGTH.fullmatch(value):
        raise FramingError(f"bad Content-Length {value[:40]!r}")
    return int(value)


class BodyReader(io.RawIOBase):
    """A readable file over one request's body; never reads past it, so keep-alive stays in step.
    Broken framing raises FramingError (from the constructor for the headers, from reads for chunks)."""

    def __init__(self, rfile: BinaryIO, headers: Message) -> None:
        self._rfile = rfile
        te = [t.strip() for t in (headers.get("Transfer-Encoding") or "").lower().split(",") if t.strip()]
        if te and te != ["chunked"] and te != ["identity"]:
            self._done = True
            raise FramingError(f"unsupported transfer encoding: {','.join(te)[:40]!r}")
        self._chunked = te == ["chunked"]
        self._done = True
        self._left = 0 if self._chunked else _declared_length(headers)
        self._done = not self._chunked and self._left == 0
        self.broken = False
        self.empty_hint = self._done  # True when the client declared no body at all

    def readable(self) -> bool:
        return True

    @property
    def done(self) -> bool:
        return self._done

    def _fail(self, message: str) -> FramingError:
        self.broken = self._done = True
        return FramingError(message)

    def _next_chunk(self) -> None:
        line = self._rfile.readline(4097)
        if not line:
            raise ConnectionError("client closed the connection inside a chunked body")
        if not line.endswith(b"\n"):
            raise self._fail("malformed chunked encoding: chunk size line too long")
        field = line.split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(field):
            raise self._fail(f"malformed chunked encoding: bad chunk size {field[:20]!r}")
        size = int(field, 16)
        if size == 0:
            while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self._done = True
        self._left = size

    def readinto(self, b) -> int:
        if self._done:
            return 0
        if self._left == 0:
            self._next_chunk()
            if self._done:
                return 0
        n = min(len(b), self._left)
        got = self._rfile.readinto(memoryview(b)[:n])  # straight into the caller's buffer: no copy
        if not got:
            raise ConnectionError("client closed the connection inside the request body")
        self._left -= got
        if self._chunked and self._left == 0 and self._rfile.readline(3) not in (b"\r\n", b"\n"):
            raise self._fail("malformed chunked encoding: no CRLF after the chunk data")
        elif not self._chunked and self._left == 0:
            self._done = True
        return got

    def read_all(self) -> bytes:
        return self.read() or b""

    def drain(self) -> bool:
        """Skip what the handler did not read; False when too much is left (then close the connection)."""
        skipped = 0
        if self.broken:
            return False
        while not self._done:
            try:
                data = self.read(65536)
            except FramingError:
                return False
            if not data:
                break
            skipped += len(data)
            if skipped > _DRAIN_LIMIT:
                return False
        return True
