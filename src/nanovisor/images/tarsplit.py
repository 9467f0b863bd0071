"""Byte-exact layer tars without keeping the tars: while unpacking we record every byte that is not file
content (headers, padding, end marker); `docker save` later replays that skeleton with the content read back
from the unpacked directory, so the stream hashes to the original diff_id (moby's tar-split idea)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from nanovisor.errors import SystemError_

_SEG, _FILE = b"S", b"F"


class SplitWriter:
    """Collects skeleton bytes and file references into a gzip file."""

    def __init__(self, path: Path) -> None:
        self._f = gzip.open(path, "wb", compresslevel=1)
        self._buf = bytearray()     # skeleton bytes not yet framed
        self._out = bytearray()     # framed records not yet compressed

    def meta(self, data: bytes) -> None:
        self._buf += data

    def file(self, name: str, size: int) -> None:
        self._flush()
        raw = name.encode("utf-8", "surrogateescape")
        self._out += _FILE + struct.pack(">I", len(raw)) + raw + struct.pack(">Q", size)
        if len(self._out) > (1 << 18):
            self._f.write(self._out)
            self._out.clear()

    def _flush(self) -> None:
        if self._buf:
            self._out += _SEG + struct.pack(">I", len(self._buf)) + self._buf
            self._buf.clear()

    def close(self) -> None:
        self._flush()
        self._f.write(self._out)
        self._f.close()


def _open_in_tree(root_fd: int, name: str) -> int:
    """Opens a regular file of an unpacked layer without following any symlink."""
    parts = name.split("/")
    fd = os.dup(root_fd)
    try:
        for p in parts[:-1]:
            nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def replay(layer_path: Path, diff_id: str) -> Iterator[bytes]:
    """Yields the original tar of the layer unpacked at layer_path (diff/ + tar-split.gz [+ stash/]);
    raises SystemError_ at the end if it no longer hashes to diff_id (modified behind our back)."""
    split_path, tree = layer_path / "tar-split.gz", layer_path / "diff"
    idx = layer_path / "stash" / "index.json"
    moved = {int(k): v for k, v in json.loads(idx.read_text()).items()} if idx.exists() else {}
    h = hashlib.sha256()
    root_fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    stash_fd = os.open(layer_path / "stash", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if moved else -1
    record = -1
    try:
        with gzip.open(split_path, "rb") as f:
            while kind := f.read(1):
                (n,) = struct.unpack(">I", f.read(4))
                if kind == _SEG:
                    data = f.read(n)
                    h.update(data)
                    yield data
                    continue
                name = f.read(n).decode("utf-8", "surrogateescape")
                (size,) = struct.unpack(">Q", f.read(8))
                record += 1
                if record in moved:
                    fd = os.open(moved[record], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stash_fd)
                else:
                    fd = _open_in_tree(root_fd, name)
                try:
                    left = size
                    while left:
                        chunk = os.read(fd, min(left, 1 << 20))
                        if not chunk:
                            break
                        left -= len(chunk)
                        h.update(chunk)
                        yield chunk
                finally:
                    os.close(fd)
                if left:
                    raise SystemError_(f"layer {diff_id}: file {name} shrank since it was unpacked")
    finally:
        os.close(root_fd)
        if stash_fd >= 0:
            os.close(stash_fd)
    if "sha256:" + h.hexdigest() != diff_id:
        raise SystemError_(f"layer {diff_id}: content changed since it was unpacked")
