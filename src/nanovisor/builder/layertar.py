"""A container's overlay upper directory as an OCI layer tar: what `docker commit` and every build step store.

Overlay records deletions as 0/0 character devices and emptied directories with trusted.overlay.opaque=y;
an OCI layer says the same with `.wh.NAME` and `.wh..wh..opq` entries. Entries are emitted in sorted order
with integer mtimes, so the same tree always gives the same bytes (and the same diff_id)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nanovisor.images.rootfs_tar import file_blocks, file_caps

OPAQUE_XATTR = "trusted.overlay.opaque"
CHUNK = 1 << 20
# Files and directories the runtime creates as mount points when an image lacks them; Docker keeps them in
# an "init" layer below the container's own, so they never show up in a commit. We drop them the same way
# when they are empty and absent from the image.
RUNTIME_MOUNTPOINTS = frozenset({"etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "sys", "dev",
                                 "dev/pts", "dev/shm", "dev/mqueue", "dev/console", ".dockerenv", "etc/mtab"})


class LowerView:
    """Answers "does this path exist in the image below?" from its layer directories (top-most first),
    honouring whiteouts and opaque directories, without mounting anything."""

    def __init__(self, lower_dirs: list[Path]) -> None:
        self.lower_dirs = lower_dirs

    def lstat(self, rel: str) -> os.stat_result | None:
        parts = rel.split("/")
        for layer in self.lower_dirs:
            try:
                st = os.lstat(layer / rel)
            except (FileNotFoundError, NotADirectoryError):
                st = None
            if st is not None:
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    return None  # whiteout
                return st
            if self._hidden_below(layer, parts):
                return None
        return None

    @staticmethod
    def _hidden_below(layer: Path, parts: list[str]) -> bool:
        """An ancestor in this layer is a whiteout or an opaque directory: lower layers do not show."""
        cur = layer
        for p in parts[:-1]:
            cur = cur / p
            try:
                st = os.lstat(cur)
            except (FileNotFoundError, NotADirectoryError):
                return False
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return True
            if not stat.S_ISDIR(st.st_mode):
                return True
            try:
                if os.getxattr(cur, OPAQUE_XATTR, follow_symlinks=False) == b"y":
                    return True
            except OSError:
                pass
        return False


@dataclass
class _Frame:
    """A directory of the upper dir being walked."""

    rel: str
    path: Path
    st: os.stat_result | None
    opaque: bool
    emitted: bool              # its header is written (or it is the walk's root, which has none)
    children: Iterator[str] = field(default_factory=lambda: iter(()))


class _Writer:
    def __init__(self, upper: Path, lower: LowerView, skip: frozenset[str]) -> None:
        self.upper = upper
        self.lower = lower
        self.skip = skip
        self.inodes: dict[tuple[int, int], str] = {}

    def header(self, name: str, st: os.stat_result | None, *, kind: bytes = tarfile.REGTYPE, size: int = 0,
               link: str = "", caps: bytes | None = None) -> bytes:
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.size = size
        ti.linkname = link
        if st is not None:
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.uid, ti.gid = st.st_uid, st.st_gid
            ti.mtime = int(st.st_mtime)
            if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            ti.mode, ti.mtime = 0, 0
        ti.uname = ti.gname = ""
        if caps:
            ti.pax_headers = {"SCHILY.xattr.security.capability": caps.decode("latin-1")}
        return ti.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")

    def tree(self, rel: str) -> Iterator[bytes]:
        """Entries below directory rel ("" for the root), sorted, depth first. An explicit stack, not
        recursion (a container can make a tree thousands of levels deep). A directory's header waits until
        it is known to belong in the layer: when its first entry does, or at its end when it is opaque, new
        or changed (a directory only copied up for children we dropped is left out)."""
        frames = [_Frame(rel, self.upper / rel if rel else self.upper, None, False, True)]
        frames[0].children = iter(sorted(os.listdir(frames[0].path)))
        while frames:
            top = frames[-1]
            name = next(top.children, None)
            if name is None:
                frames.pop()
                if not top.emitted and self._dir_kept(top):
                    yield from self._flush(frames + [top])
                continue
            crel = f"{top.rel}/{name}" if top.rel else name
            path = self.upper / crel
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                frame = _Frame(crel, path, st, _xattr(path, OPAQUE_XATTR) == b"y", False)
                frame.children = iter(sorted(os.listdir(path)))
                frames.append(frame)
                continue
            first = True
            for chunk in self.entry(crel, st):
                if first:
                    yield from self._flush(frames)
                    first = False
                yield chunk

    def _flush(self, frames: list[_Frame]) -> Iterator[bytes]:
        """Headers of the enclosing directories not written yet, outermost first."""
        for f in frames:
            if not f.emitted:
                f.emitted = True
                yield self.header(f.rel + "/", f.st, kind=tarfile.DIRTYPE, caps=_xattr(f.path, "security.capability"))
                if f.opaque:
                    yield self.header(f"{f.rel}/.wh..wh..opq", None)

    def _dir_kept(self, f: _Frame) -> bool:
        """Whether a directory with no entry of its own in the layer still belongs there."""
        if f.opaque:
            return True
        below = self.lower.lstat(f.rel)
        if below is not None and stat.S_ISDIR(below.st_mode) and \
                (below.st_mode, below.st_uid, below.st_gid) == (f.st.st_mode, f.st.st_uid, f.st.st_gid):
            return False  # only copied up for children we dropped (or a touched mtime): no change worth a layer
        if below is None and f.rel in self.skip:
            return False  # a mount point the runtime made
        return True

    def entry(self, rel: str, st: os.stat_result) -> Iterator[bytes]:
        """A non-directory entry of the upper dir (tree() walks the directories)."""
        path = self.upper / rel
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:  # overlay whiteout
            parent, _, base = rel.rpartition("/")
            if self.lower.lstat(rel) is not None:
                yield self.header(f"{parent}/.wh.{base}" if parent else f".wh.{base}", None)
            return
        if rel in self.skip and stat.S_ISREG(mode) and st.st_size == 0 and self.lower.lstat(rel) is None:
            return
        if stat.S_ISSOCK(mode):
            return
        if stat.S_ISLNK(mode):
            yield self.header(rel, st, kind=tarfile.SYMTYPE, link=os.readlink(path))
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.inodes:
                yield self.header(rel, st, kind=tarfile.LNKTYPE, link=self.inodes[key])
                return
            if st.st_nlink > 1:
                self.inodes[key] = rel
            yield from self._file(rel, path, st)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            yield self.header(rel, st, kind=tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE)
        elif stat.S_ISFIFO(mode):
            yield self.header(rel, st, kind=tarfile.FIFOTYPE)

    def _file(self, rel: str, path: Path, st: os.stat_result) -> Iterator[bytes]:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            yield self.header(rel, st, size=st.st_size, caps=file_caps(fd))
            yield from file_blocks(fd, st.st_size)
        finally:
            os.close(fd)


def _xattr(path: Path, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def diff_entries(upper: Path, lower_dirs: list[Path], skip: Iterable[str] = ()) -> Iterator[bytes]:
    """The layer's members (without the end-of-archive blocks), in a stable order."""
    writer = _Writer(upper, LowerView(lower_dirs), frozenset(skip))
    yield from writer.tree("")


def diff_tar(upper: Path, lower_dirs: list[Path], skip: Iterable[str] = ()) -> Iterator[bytes] | None:
    """The whole layer tar, or None when the upper directory holds no change at all."""
    entries = diff_entries(upper, lower_dirs, skip)
    first = next(entries, None)
    if first is None:
        return None

    def stream() -> Iterator[bytes]:
        yield first
        yield from entries
        yield b"\0" * 1024
    return stream()


class IterReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (to hand a generated tar to add_layer)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = nxt
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def as_file(chunks: Iterator[bytes]) -> io.BufferedReader:
    return io.BufferedReader(IterReader(chunks), buffer_size=CHUNK)
