"""The build context and COPY/ADD sources: finding them (globs, .dockerignore, symlinks resolved inside the
root), hashing their content for the layer cache, and turning them into tar members for the destination.

A context given as a tar stream (POST /build) is unpacked with the images helpers, which refuse hostile
archives; a directory (the CLI) is read in place, never copied."""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nanovisor.builder.dockerignore import Matcher, _compile, read_patterns
from nanovisor.errors import InvalidParameter, NotFound
from nanovisor.rmtree import remove_tree

CHUNK = 1 << 20
_GLOB = set("*?[")


class SourceRoot:
    """A tree COPY reads from: the build context (with its .dockerignore) or another image's rootfs."""

    def __init__(self, root: Path, matcher: Matcher | None = None, what: str = "build context",
                 digests: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.matcher = matcher or Matcher([])
        self.what = what
        # content digests of the files below root taken as they were written (path -> sha256 hex); files
        # not in it are read and hashed once, then remembered too
        self.digests: dict[str, str] = digests if digests is not None else {}

    def file_digest(self, rel: str) -> str:
        """sha256 (hex) of the regular file rel, hashed at most once per build."""
        digest = self.digests.get(rel)
        if digest is None:
            digest = self.digests[rel] = _file_digest(self.root / rel)
        return digest

    def excluded(self, rel: str) -> bool:
        return bool(rel) and self.matcher.excluded(rel)

    def resolve(self, rel: str) -> str:
        """rel with symlinks followed inside the root (the relative path that really holds the file)."""
        from nanovisor.runtime.users import scoped_path

        real = scoped_path(str(self.root), rel)
        root = os.path.realpath(self.root)
        return os.path.relpath(real, root).replace(os.sep, "/") if real != root else ""

    def walk(self, rel: str = "") -> Iterator[str]:
        """Every path below rel (not following symlinks), parents before children, sorted, ignored ones left
        out (a directory that is ignored is still walked: an exception may bring a child back). A stack, not
        recursion: a context may nest thousands of directories."""
        stack = [(rel, iter(self._names(rel)))]
        while stack:
            parent, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                continue
            child = f"{parent}/{name}" if parent else name
            if not self.excluded(child):
                yield child
            if stat.S_ISDIR(os.lstat(self.root / child).st_mode) and \
                    (not self.excluded(child) or self.matcher.has_exclusions):
                stack.append((child, iter(self._names(child))))

    def _names(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.root / rel if rel else self.root))
        except (NotADirectoryError, FileNotFoundError):
            return []


@dataclass
class Source:
    root: SourceRoot
    rel: str          # resolved path inside the root ("" for the root itself)
    name: str         # base name used when the destination is a directory
    is_dir: bool


class BuildContext:
    """A directory holding the build context; removed on close() when we unpacked it ourselves."""

    def __init__(self, root: Path, owned: bool, digests: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.owned = owned
        self.sources = SourceRoot(self.root)
        ignore = self._read_inside(".dockerignore")
        patterns = read_patterns(ignore.decode("utf-8", errors="replace")) if ignore is not None else []
        self.sources = SourceRoot(self.root, Matcher(patterns), digests=digests)
        # an unpacked context goes away with this object at the latest (a request dropped before its
        # build stream ever started never calls close())
        self._cleanup = weakref.finalize(self, remove_tree, self.root, True) if owned else None

    def _read_inside(self, rel: str) -> bytes | None:
        """A regular file of the context, symlinks resolved inside it (moby's FollowSymlinkInScope): a
        `.dockerignore` or Dockerfile linking to /etc/shadow reads the context's /etc/shadow, if any. None
        when there is no regular file there (a FIFO or a device is never opened for reading)."""
        try:
            resolved = self.sources.resolve(rel)
            fd = os.open(self.root / resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, InvalidParameter):
            return None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return f.read()

    @classmethod
    def from_dir(cls, path: str | os.PathLike) -> BuildContext:
        path = Path(path)
        if not path.is_dir():
            raise InvalidParameter(f"unable to prepare context: path {str(path)!r} not found")
        return cls(path, owned=False)

    @classmethod
    def from_tar(cls, stream: BinaryIO, tmp_dir: Path) -> BuildContext:
        from nanovisor.images.unpack import ContentDigests, extract_into

        tmp_dir.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="build-context-", dir=tmp_dir))
        digests = ContentDigests()  # the context is hashed on the way in: COPY's cache check reads nothing
        try:
            extract_into(root, stream, "/", digests=digests)
        except BaseException:
            digests.close()
            remove_tree(root, ignore_errors=True)
            raise
        return cls(root, owned=True, digests=digests.close())

    def read_dockerfile(self, name: str) -> str:
        rel = posixpath.normpath(name or "Dockerfile").lstrip("/")
        if rel.startswith(".."):
            raise InvalidParameter(f"Cannot locate specified Dockerfile: {name}")
        data = self._read_inside(rel)
        if data is None:
            raise InvalidParameter(f"Cannot locate specified Dockerfile: {name}")
        return data.decode("utf-8", errors="replace").removeprefix("\ufeff")

    def close(self) -> None:
        """Removes the context we unpacked (again: a no-op)."""
        if self._cleanup is not None:
            self._cleanup()


def find_sources(root: SourceRoot, patterns: list[str], cmd: str) -> list[Source]:
    out: list[Source] = []
    for pattern in patterns:
        clean = posixpath.normpath(pattern) if pattern else "."
        if clean == ".." or clean.startswith("../"):
            raise InvalidParameter(f"{cmd} failed: forbidden path outside the build context: {pattern} ()")
        rel = posixpath.normpath("/" + pattern).lstrip("/")
        if set(rel) & _GLOB:
            regex = _compile(rel)
            matches = [p for p in root.walk() if regex.match(p)]
            for m in matches:
                out.append(_source(root, m, pattern, cmd))
            continue
        if root.excluded(rel):
            raise NotFound(f"{cmd} failed: file not found in {root.what} or excluded by .dockerignore: "
                           f"stat {rel}: file does not exist")
        out.append(_source(root, rel, pattern, cmd))
    if not out:
        raise InvalidParameter(f"{cmd} failed: no source files were specified")
    return out


def _source(root: SourceRoot, rel: str, pattern: str, cmd: str) -> Source:
    try:
        resolved = root.resolve(rel)
        st = os.stat(root.root / resolved, follow_symlinks=False) if resolved else os.stat(root.root)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"{cmd} failed: file not found in {root.what} or excluded by .dockerignore: "
                       f"stat {rel or pattern}: file does not exist") from None
    return Source(root=root, rel=resolved, name=posixpath.basename(rel), is_dir=stat.S_ISDIR(st.st_mode))


def _members(src: Source) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to the source, lstat) for the source itself ("") and, for a directory, below it."""
    top = src.root.root / src.rel if src.rel else src.root.root
    yield "", os.lstat(top)
    if src.is_dir:
        for rel in src.root.walk(src.rel):
            sub = rel[len(src.rel) + 1:] if src.rel else rel
            try:
                yield sub, os.lstat(src.root.root / rel)
            except FileNotFoundError:
                continue


def _host(src: Source, sub: str) -> Path:
    base = src.root.root / src.rel if src.rel else src.root.root
    return base / sub if sub else base


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        while chunk := os.read(fd, CHUNK):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def source_hash(src: Source) -> str:
    """moby-style "file:<sha256>" / "dir:<sha256>" over names, types, modes, link targets and content
    (not owners or times: COPY resets owners, and a touched file with the same bytes must still hit)."""
    h = hashlib.sha256()
    for sub, st in _members(src):
        kind = stat.S_IFMT(st.st_mode)
        h.update(f"{sub}\0{kind}\0{stat.S_IMODE(st.st_mode):o}\0".encode(errors="surrogateescape"))
        if stat.S_ISREG(st.st_mode):
            h.update(src.root.file_digest(f"{src.rel}/{sub}" if src.rel and sub else src.rel or sub).encode())
        elif stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(_host(src, sub)).encode(errors="surrogateescape"))
        h.update(b"\n")
    return ("dir:" if src.is_dir else "file:") + h.hexdigest()


def _header(name: str, st: os.stat_result | None, kind: bytes, size: int = 0, link: str = "",
            mode: int | None = None) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = size
    ti.linkname = link
    ti.mode = mode if mode is not None else (stat.S_IMODE(st.st_mode) if st else 0o755)
    ti.mtime = int(st.st_mtime) if st else 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def dir_entry(name: str, mode: int = 0o755) -> bytes:
    import time

    ti = tarfile.TarInfo(name.rstrip("/") + "/")
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, int(time.time())
    return ti.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def source_entries(src: Source, dest: str, chmod: int | None = None) -> Iterator[bytes]:
    """Tar members putting src at dest (a relative path: the file itself, or the directory whose content
    the source directory becomes)."""
    for sub, st in _members(src):
        name = f"{dest}/{sub}" if sub else dest
        mode = chmod if chmod is not None else None
        if stat.S_ISDIR(st.st_mode):
            if sub:
                yield _header(name.rstrip("/") + "/", st, tarfile.DIRTYPE, mode=mode)
        elif stat.S_ISLNK(st.st_mode):
            yield _header(name, st, tarfile.SYMTYPE, link=os.readlink(_host(src, sub)))
        elif stat.S_ISREG(st.st_mode):
            yield from _file(name, _host(src, sub), st, mode)
        elif stat.S_ISFIFO(st.st_mode):
            yield _header(name, st, tarfile.FIFOTYPE, mode=mode)


def _file(name: str, path: Path, st: os.stat_result, mode: int | None) -> Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        yield _header(name, st, tarfile.REGTYPE, size=size, mode=mode)
        left = size
        while left:
            chunk = os.read(fd, min(left, CHUNK)) or b"\0" * min(left, CHUNK)
            left -= len(chunk)
            yield chunk
    finally:
        os.close(fd)
    if size % 512:
        yield b"\0" * (512 - size % 512)
