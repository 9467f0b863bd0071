"""Byte-exact layer tars without keeping the tars: while unpacking we record every byte that is not file
content (headers, padding, end marker); `docker save` later replays that skeleton with the content read back
from the unpacked directory, so the stream hashes to the original diff_id (moby's tar-split idea)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import queue
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from nanovisor.errors import SystemError_

_SEG, _FILE = b"S", b"F"
_SEG_MAX = 1 << 18          # skeleton bytes framed and handed to the compressor in pieces of about this size
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SplitWriter:
    """Collects skeleton bytes and file references into a gzip file; compression runs in a helper thread
    (zlib releases the GIL), off the unpacking path."""

    def __init__(self, path: Path) -> None:
        self._f = gzip.open(path, "wb", compresslevel=1)
        self._buf = bytearray()     # skeleton bytes not yet framed
        self._out = bytearray()     # framed records not yet compressed
        self._q: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._compress, name="tar-split", daemon=True)
        self._thread.start()

    def _compress(self) -> None:
        while (data := self._q.get()) is not None:
            if self._error is None:
                try:
                    self._f.write(data)
                except BaseException as e:  # noqa: BLE001 - raised by close()
                    self._error = e

    def meta(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > _SEG_MAX:  # a layer of headers only (directories, links) stays bounded too
            self._flush()
            self._push()

    def file(self, name: str, size: int) -> None:
        self._flush()
        raw = name.encode("utf-8", "surrogateescape")
        self._out += _FILE + struct.pack(">I", len(raw)) + raw + struct.pack(">Q", size)
        self._push()

    def _push(self) -> None:
        if len(self._out) > _SEG_MAX:
            self._q.put(self._out)
            self._out = bytearray()

    def _flush(self) -> None:
        if self._buf:
            self._out += _SEG + struct.pack(">I", len(self._buf)) + self._buf
            self._buf.clear()

    def close(self) -> None:
        if self._thread.is_alive():
            self._flush()
            self._q.put(self._out)
            self._q.put(None)
            self._thread.join()
        self._f.close()
        if self._error is not None:
            raise self._error


_OUT = 1 << 20              # replay hands out pieces of about this size
_MAX_CACHED_DIRS = 64   # open directory fds kept (tars list siblings together: a few suffice)


class _Records:
    """Reads the framed records of a tar-split file from a few big decompressed blocks."""

    def __init__(self, f: gzip.GzipFile) -> None:
        self._f = f
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._buf):
            more = [self._buf[self._pos:]]
            have = len(more[0])
            while have < n:
                chunk = self._f.read(max(_OUT, n - have))
                if not chunk:
                    raise SystemError_("tar-split file is truncated")
                more.append(chunk)
                have += len(chunk)
            self._buf, self._pos, end = b"".join(more), 0, n
        out = self._buf[self._pos:end]
        self._pos = end
        return out

    def kind(self) -> bytes:
        """The next record's kind, b"" at the end."""
        if self._pos >= len(self._buf):
            self._buf, self._pos = self._f.read(_OUT), 0
        kind = self._buf[self._pos:self._pos + 1]
        self._pos += 1
        return kind


class _Tree:
    """Opens the regular files of an unpacked layer without following any symlink, keeping the fds of
    recently used directories (a layer lists the files of a directory together)."""

    def __init__(self, root: Path) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dirs: dict[str, int] = {}

    def _dir(self, path: str) -> int:
        if not path:
            return self.root_fd
        fd = self.dirs.get(path)
        if fd is not None:
            return fd
        if len(self.dirs) >= _MAX_CACHED_DIRS:
            self.close_dirs()
        missing, cur = [], path  # a loop down from the deepest cached ancestor: layers nest thousands deep
        while cur and cur not in self.dirs:
            missing.append(cur)
            cur = cur.rpartition("/")[0]
        fd = self.dirs[cur] if cur else self.root_fd
        for p in reversed(missing):
            fd = os.open(p.rpartition("/")[2], _O_DIR, dir_fd=fd)
            self.dirs[p] = fd
        return fd

    def open(self, name: str) -> int:
        parent, _, base = name.rpartition("/")
        return os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dir(parent))

    def close_dirs(self) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()

    def close(self) -> None:
        self.close_dirs()
        os.close(self.root_fd)


class _Hasher:
    """sha256 in a helper thread (hashlib releases the GIL), so hashing overlaps with reading and writing."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self._q: queue.Queue = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._work, name="replay-hash", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (data := self._q.get()) is not None:
            self.h.update(data)

    def update(self, data: bytes | bytearray) -> None:
        self._q.put(data)  # never modified afterwards: replay hands out a fresh buffer each time

    def stop(self) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()

    def digest(self) -> str:
        self.stop()
        return "sha256:" + self.h.hexdigest()


def replay(layer_path: Path, diff_id: str) -> Iterator[bytes]:
    """Yields the original tar of the layer unpacked at layer_path (diff/ + tar-split.gz [+ stash/]), in
    pieces of about 1 MiB (bytes-like: bytearray); raises SystemError_ at the end if it no longer hashes to
    diff_id (modified behind our back)."""
    split_path, tree_path = layer_path / "tar-split.gz", layer_path / "diff"
    idx = layer_path / "stash" / "index.json"
    moved = {int(k): v for k, v in json.loads(idx.read_text()).items()} if idx.exists() else {}
    hasher = _Hasher()
    tree = _Tree(tree_path)
    stash_fd = os.open(layer_path / "stash", _O_DIR) if moved else -1
    record = -1
    buf = bytearray()
    try:
        with gzip.open(split_path, "rb") as f:
            recs = _Records(f)
            while kind := recs.kind():
                (n,) = struct.unpack(">I", recs.take(4))
                if kind == _SEG:
                    buf += recs.take(n)
                    if len(buf) >= _OUT:
                        hasher.update(buf)
                        yield buf
                        buf = bytearray()
                    continue
                name = recs.take(n).decode("utf-8", "surrogateescape")
                (size,) = struct.unpack(">Q", recs.take(8))
                record += 1
                if record in moved:
                    fd = os.open(moved[record], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stash_fd)
                else:
                    fd = tree.open(name)
                try:
                    left = size
                    while left:
                        chunk = os.read(fd, min(left, _OUT))
                        if not chunk:
                            break
                        left -= len(chunk)
                        buf += chunk
                        if len(buf) >= _OUT:
                            hasher.update(buf)
                            yield buf
                            buf = bytearray()
                finally:
                    os.close(fd)
                if left:
                    raise SystemError_(f"layer {diff_id}: file {name} shrank since it was unpacked")
                if len(buf) >= _OUT:
                    hasher.update(buf)
                    yield buf
                    buf = bytearray()
        if buf:
            hasher.update(buf)
            yield buf
    finally:
        tree.close()
        if stash_fd >= 0:
            os.close(stash_fd)
        hasher.stop()
    if hasher.digest() != diff_id:
        raise SystemError_(f"layer {diff_id}: content changed since it was unpacked")
