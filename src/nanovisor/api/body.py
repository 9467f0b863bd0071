"""Request bodies: fixed Content-Length or chunked transfer encoding (the Go client streams tars chunked)."""

from __future__ import annotations

import io
from email.message import Message
from typing import BinaryIO

_DRAIN_LIMIT = 1 << 20


class BodyReader(io.RawIOBase):
    """A readable file over one request's body; never reads past it, so keep-alive stays in step."""

    def __init__(self, rfile: BinaryIO, headers: Message) -> None:
        self._rfile = rfile
        te = (headers.get("Transfer-Encoding") or "").lower()
        self._chunked = "chunked" in te
        self._left = 0 if self._chunked else int(headers.get("Content-Length") or 0)
        self._done = not self._chunked and self._left == 0
        self.empty_hint = self._done  # True when the client declared no body at all

    def readable(self) -> bool:
        return True

    @property
    def done(self) -> bool:
        return self._done

    def _next_chunk(self) -> None:
        line = self._rfile.readline(65537)
        if not line:
            raise ConnectionError("client closed the connection inside a chunked body")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
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
        if self._chunked and self._left == 0:
            self._rfile.readline(3)  # CRLF after the chunk
        elif not self._chunked and self._left == 0:
            self._done = True
        return got

    def read_all(self) -> bytes:
        return self.read() or b""

    def drain(self) -> bool:
        """Skip what the handler did not read; False when too much is left (then close the connection)."""
        skipped = 0
        while not self._done:
            data = self.read(65536)
            if not data:
                break
            skipped += len(data)
            if skipped > _DRAIN_LIMIT:
                return False
        return True
