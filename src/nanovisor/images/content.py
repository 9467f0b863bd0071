"""Content-addressed blobs (configs, manifests, indexes) under Paths.blobs/<hex>.

A blob is written to a temporary file in Paths.tmp, verified, fsynced and renamed into place: a killed
process leaves at most a stray temp file, never a blob under the wrong digest."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from nanovisor.errors import InvalidParameter, NotFound
from nanovisor.paths import Paths

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


def check_digest(digest: str) -> str:
    """Returns the hex part; refuses anything that is not a canonical sha256 digest (no path tricks)."""
    if not _DIGEST.match(digest):
        raise InvalidParameter(f"invalid digest {digest!r}")
    return digest[7:]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, paths: Paths) -> None:
        self.dir = paths.blobs
        self._paths = paths

    @property
    def tmp(self) -> Path:
        return self._paths.tmp  # the process's scratch dir, made when a blob is first written

    def path(self, digest: str) -> Path:
        return self.dir / check_digest(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def put(self, data: bytes, expected: str | None = None) -> str:
        digest = digest_of(data)
        if expected is not None and expected != digest:
            raise InvalidParameter(f"digest mismatch: expected {expected}, got {digest}")
        if not self.has(digest):
            self._commit(iter([data]), digest)
        return digest

    def put_stream(self, stream: BinaryIO, expected: str | None = None) -> tuple[str, int]:
        """Stores a stream; (digest, size). With expected, a mismatch stores nothing."""
        return self._commit(iter(lambda: stream.read(1 << 20), b""), expected)

    def _commit(self, chunks: Iterator[bytes], expected: str | None) -> tuple[str, int]:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="blob-", dir=self.tmp)
        h = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            digest = "sha256:" + h.hexdigest()
            if expected is not None and digest != expected:
                raise InvalidParameter(f"digest mismatch: expected {expected}, got {digest}")
            os.chmod(tmp, 0o644)
            os.rename(tmp, self.dir / digest[7:])
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            return digest, size
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"content digest {digest}: not found") from None

    def delete(self, digest: str) -> None:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def digests(self) -> list[str]:
        if not self.dir.exists():
            return []
        return ["sha256:" + p.name for p in self.dir.iterdir() if _DIGEST.match("sha256:" + p.name)]
