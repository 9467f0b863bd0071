"""Safe tar extraction: image layers (with OCI whiteouts turned into overlayfs ones) and `docker cp` uploads
into a container rootfs. Every filesystem call goes through directory fds (see fstree.py), so no member name,
symlink or hard link in the archive can make us write outside the target directory."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nanovisor.errors import InvalidParameter, SystemError_
from nanovisor.images import fstree
from nanovisor.images.rootfs_tar import FileNotInRoot, export_tar, stat_path, tar_path
from nanovisor.images.spill import SpillMap
from nanovisor.images.tarsplit import SplitWriter
from nanovisor.images.tarstream import (
    BLK,
    CHR,
    DIR,
    FIFO,
    HARD,
    REG,
    SYM,
    DataReader,
    Member,
    Source,
    TarError,
    buffered_reader,
    decompressed,
    members,
    release,
)
from nanovisor.rmtree import remove_tree

__all__ = ["ContentDigests", "FileNotInRoot", "LayerInfo", "export_tar", "extract_into", "stat_path", "tar_path", "unpack_layer"]

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_DEV_TYPES = {CHR: stat.S_IFCHR, BLK: stat.S_IFBLK, FIFO: stat.S_IFIFO}
_SKIP_XATTRS = ("trusted.overlay.", "security.selinux")
_MAX_CACHED_DIRS = 64   # open directory fds kept (tars list siblings together: a few suffice)
MAX_REWRITES = 10_000   # files a layer may write more than once (each earlier copy is kept for `save`)


@dataclass
class LayerInfo:
    diff_id: str        # sha256 of the uncompressed tar
    size: int           # bytes of file content
    compression: str    # what the stream was compressed with
    path: Path          # the layer directory (holds diff/ and tar-split.gz)


def _ns(t: float) -> int:
    return int(round(t * 1e9))


class ContentDigests:
    """sha256 (hex) of every regular file an extraction writes, keyed by its path below the extraction
    root, computed in a helper thread while the file is written (hashlib releases the GIL): a build hashes
    its context once, on the way in, instead of reading it back. A path later replaced by anything else
    is forgotten."""

    def __init__(self) -> None:
        self.digests: dict[str, str] = {}
        self._q: queue.Queue = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._work, name="context-hash", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (item := self._q.get()) is not None:
            what, data = item
            if isinstance(what, str):
                if data is None:
                    self.digests.pop(what, None)
                else:
                    self.digests[what] = data.hexdigest()
            else:
                what.update(data)

    def hashing(self, path: str, chunks: Iterable[bytes | memoryview]) -> Iterator[bytes | memoryview]:
        """chunks, handed on unchanged (they are never modified afterwards) and hashed meanwhile."""
        h = hashlib.sha256()
        for chunk in chunks:
            self._q.put((h, chunk))
            yield chunk
        self._q.put((path, h))

    def forget(self, path: str) -> None:
        self._q.put((path, None))

    def close(self) -> dict[str, str]:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        return self.digests


class _Writer:
    """Creates archive members below a root directory, one at a time."""

    def __init__(self, root: Path, layer: bool, no_overwrite_dir_non_dir: bool = False,
                 owner: tuple[int, int] | None = None, base: str = "", scratch: Path | None = None,
                 digests: ContentDigests | None = None) -> None:
        self.root_fd = fstree.open_root(root)
        self.digests = digests
        self.base = base  # members land below this (already resolved) directory
        self.layer = layer
        self.no_overwrite = no_overwrite_dir_non_dir
        self.owner = owner
        self.dirs: dict[str, int] = {}          # parent path -> open fd (cache; tars are mostly sorted)
        self.dir_times = SpillMap(scratch)   # directory -> mtime (ns), set last; a repeated entry wins

    def close(self) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()
        os.close(self.root_fd)
        self.dir_times.close()

    def _forget(self) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()

    def _parent(self, parent: str) -> int:
        fd = self.dirs.get(parent)
        if fd is not None:
            return fd
        if len(self.dirs) > _MAX_CACHED_DIRS:
            self._forget()
        if self.layer:
            # one openat per level from the deepest cached ancestor (tars list siblings together); a loop, not
            # recursion: an archive may nest thousands of directories
            missing, cur = [], parent
            while cur and cur not in self.dirs:
                missing.append(cur)
                cur = cur.rpartition("/")[0]
            if cur not in self.dirs:
                self.dirs[cur] = os.dup(self.root_fd)
            fd = self.dirs[cur]
            for path in reversed(missing):
                fd = fstree.open_child(fd, path.rpartition("/")[2], True, shown=path)
                self.dirs[path] = fd
            return fd
        else:
            fd, _names, leaf = fstree.resolve_in_root(self.root_fd, parent.split("/") if parent else [],
                                                      create=True)
            if leaf is not None:  # pragma: no cover - create=True always yields a directory
                os.close(fd)
                raise InvalidParameter(f"not a directory: {parent}")
        self.dirs[parent] = fd
        return fd

    def _clear(self, pfd: int, base: str, is_dir: bool, path: str) -> bool:
        """Makes room for a new entry; returns True when an existing directory should be kept as is."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        old_dir = stat.S_ISDIR(st.st_mode)
        if old_dir and is_dir:
            return True
        if self.no_overwrite and old_dir != is_dir:
            if old_dir:
                raise InvalidParameter(f'cannot overwrite directory "/{path}" with non-directory "/{path}"')
            raise InvalidParameter(f'cannot overwrite non-directory "/{path}" with directory "/{path}"')
        if old_dir:
            remove_tree(base, ignore_errors=False, dir_fd=pfd)
        else:
            os.unlink(base, dir_fd=pfd)
        self._forget()
        return False

    def _fill(self, fd: int, chunks: Iterable[bytes | memoryview], m: Member) -> None:
        """Content and metadata of a new regular file; closes fd."""
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            self._meta_fd(fd, m)
            t_ns = _ns(m.mtime)
            os.utime(fd, ns=(t_ns, t_ns))
        finally:
            os.close(fd)

    def _meta_fd(self, fd: int, m: Member) -> None:
        uid, gid = self.owner or (m.uid, m.gid)
        os.chown(fd, uid, gid)
        os.chmod(fd, m.mode)
        for k, v in m.xattrs.items():
            if not k.startswith(_SKIP_XATTRS):
                os.setxattr(fd, k, v)

    def add(self, m: Member, data: DataReader) -> None:
        path = m.name
        if path and self.base:
            path = f"{self.base}/{path}"
        if m.name == "":
            if self.layer and m.type == DIR:
                self._meta_fd(self.root_fd, m)
                self.dir_times[""] = _ns(m.mtime)
            return
        parent, _, base = path.rpartition("/")
        pfd = self._parent(parent)
        if self.layer and base.startswith(WH_PREFIX):
            self._whiteout(pfd, parent, base, m)
            return
        t = m.type
        if self.digests is not None and t != REG:
            self.digests.forget(path)
        if t == REG:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(base, flags, 0o600, dir_fd=pfd)
            except FileExistsError:
                self._clear(pfd, base, False, path)
                pfd = self._parent(parent)
                fd = os.open(base, flags, 0o600, dir_fd=pfd)
            chunks = data.chunks()
            self._fill(fd, chunks if self.digests is None else self.digests.hashing(path, chunks), m)
        elif t == DIR:
            try:
                os.mkdir(base, 0o700, dir_fd=pfd)
            except FileExistsError:
                if not self._clear(pfd, base, True, path):
                    pfd = self._parent(parent)
                    os.mkdir(base, 0o700, dir_fd=pfd)
            fd = os.open(base, fstree.O_DIR, dir_fd=pfd)
            try:
                self._meta_fd(fd, m)
            except BaseException:
                os.close(fd)
                raise
            if path in self.dirs or len(self.dirs) >= _MAX_CACHED_DIRS:
                os.close(fd)
            else:
                self.dirs[path] = fd  # its children come next
            self.dir_times[path] = _ns(m.mtime)
        elif t == SYM:
            try:
                os.symlink(m.linkname, base, dir_fd=pfd)
            except FileExistsError:
                self._clear(pfd, base, False, path)
                pfd = self._parent(parent)
                os.symlink(m.linkname, base, dir_fd=pfd)
            self._meta_link(pfd, base, m)
            if not self.layer:
                self._forget()  # a new symlink may change how later paths resolve
        elif t == HARD:
            self._hardlink(pfd, parent, base, m)
        elif t in _DEV_TYPES:
            dev = os.makedev(m.devmajor, m.devminor)
            try:
                os.mknod(base, m.mode | _DEV_TYPES[t], dev, dir_fd=pfd)
            except FileExistsError:
                self._clear(pfd, base, False, path)
                pfd = self._parent(parent)
                os.mknod(base, m.mode | _DEV_TYPES[t], dev, dir_fd=pfd)
            fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                proc = f"/proc/self/fd/{fd}"
                uid, gid = self.owner or (m.uid, m.gid)
                os.chown(proc, uid, gid)
                os.chmod(proc, m.mode)
                t_ns = _ns(m.mtime)
                os.utime(proc, ns=(t_ns, t_ns))
            finally:
                os.close(fd)
        else:  # pragma: no cover - tarstream only yields the types above
            raise TarError(f"unsupported entry type {t!r}")

    def _meta_link(self, pfd: int, base: str, m: Member) -> None:
        uid, gid = self.owner or (m.uid, m.gid)
        os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
        for k, v in m.xattrs.items():
            if not k.startswith(_SKIP_XATTRS):
                try:
                    os.setxattr(f"/proc/self/fd/{pfd}/{base}", k, v, follow_symlinks=False)
                except OSError as e:
                    if e.errno not in (errno.EPERM, errno.ENOTSUP):
                        raise
        t_ns = _ns(m.mtime)
        os.utime(base, ns=(t_ns, t_ns), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, pfd: int, parent: str, base: str, m: Member) -> None:
        target = fstree.split(m.linkname)
        if not target or ".." in target:
            raise fstree.Escape(f"invalid tar: hard link {m.raw_name!r} points outside the archive root")
        if self.base:
            target = self.base.split("/") + target
        tparent = target[:-1]
        if self.layer:
            tfd = fstree.walk_strict(self.root_fd, tparent)
            tbase = target[-1]
        else:
            tfd, _n, leaf = fstree.resolve_in_root(self.root_fd, target)
            if leaf is None:
                os.close(tfd)
                raise InvalidParameter(f"invalid tar: hard link {m.raw_name!r} to a directory")
            tbase = leaf
        try:
            try:
                os.stat(tbase, dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                raise InvalidParameter(f"invalid tar: hard link {m.raw_name!r} points to missing "
                                       f"{m.linkname!r}") from None
            self._clear(pfd, base, False, "/".join(filter(None, (self.base, m.name))))
            pfd = self._parent(parent)
            os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _whiteout(self, pfd: int, parent: str, base: str, m: Member) -> None:
        if base == WH_OPAQUE:
            os.setxattr(pfd, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WH_PREFIX + WH_PREFIX):
            return  # other aufs metadata (.wh..wh.plnk, ...): meaningless for overlay
        name = base[len(WH_PREFIX):]
        self._clear(pfd, name, False, (parent + "/" if parent else "") + name)
        pfd = self._parent(parent)
        os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        """Directory mtimes last (creating children changed them)."""
        self._forget()
        if self.layer:
            self._finish_strict()
            return
        for path, t_ns in self.dir_times.descending():
            try:
                fd, _n, leaf = fstree.resolve_in_root(self.root_fd, path.split("/") if path else [])
            except (FileNotFoundError, NotADirectoryError, InvalidParameter):
                continue  # replaced later in the archive
            try:
                if leaf is None:
                    os.utime(fd, ns=(t_ns, t_ns))
            finally:
                os.close(fd)

    def _finish_strict(self) -> None:
        """Walks to each directory without following symlinks (one may have replaced a directory since),
        visiting them in reverse path order so that only the open chain of ancestors is kept: each
        directory is opened once."""
        chain: list[tuple[list[str], int]] = []   # the open ancestors of the current directory
        try:
            for path, t_ns in self.dir_times.descending():
                parts = path.split("/") if path else []
                while chain and chain[-1][0] != parts[:len(chain[-1][0])]:
                    os.close(chain.pop()[1])
                depth = len(chain[-1][0]) if chain else 0
                fd = chain[-1][1] if chain else self.root_fd
                for i in range(depth, len(parts)):
                    try:
                        fd = os.open(parts[i], fstree.O_DIR, dir_fd=fd)
                    except OSError as e:
                        if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                            raise
                        fd = -1  # replaced by a non-directory later in the archive
                        break
                    chain.append((parts[:i + 1], fd))
                if fd >= 0:
                    os.utime(fd, ns=(t_ns, t_ns))
        finally:
            for _p, fd in chain:
                os.close(fd)


def _run(src: Source, writer: _Writer, split: SplitWriter | None, stash: Path | None) -> int:
    """Feeds every member to writer; returns the total content size."""
    size = 0
    seen = SpillMap(stash.parent if stash is not None else None)  # data file -> its tar-split record
    moved: dict[int, str] = {}      # tar-split record index -> stashed copy (overwritten later in the tar)
    records = 0
    try:
        for m, data in members(src):
            if split is not None and m.type == REG and m.size:
                earlier = seen.get(m.name)
                if earlier is not None and stash is not None:
                    if len(moved) >= MAX_REWRITES:
                        raise TarError("invalid tar: too many files written more than once")
                    _stash(writer, m.name, stash, earlier, moved)
                seen[m.name] = records
                records += 1
                split.file(m.name, m.size)
            size += m.size
            try:
                writer.add(m, data)
            except OSError as e:
                raise _os_error(e, m) from None
    finally:
        seen.close()
    writer.finish()
    if moved and stash is not None:
        (stash / "index.json").write_text(json.dumps({str(k): v for k, v in moved.items()}))
    return size


def _stash(writer: _Writer, name: str, stash: Path, index: int, moved: dict[int, str]) -> None:
    """Keeps the earlier copy of a file the archive writes twice, so `save` can replay both."""
    stash.mkdir(exist_ok=True)
    parent, _, base = name.rpartition("/")
    pfd = writer._parent(parent)
    dst = fstree.open_root(stash)
    try:
        os.link(base, str(index), src_dir_fd=pfd, dst_dir_fd=dst, follow_symlinks=False)
    except FileNotFoundError:
        return
    finally:
        os.close(dst)
    moved[index] = str(index)


def _os_error(e: OSError, m: Member) -> Exception:
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
        return SystemError_(f"extracting {m.raw_name}: {e.strerror}")
    return InvalidParameter(f"invalid tar: cannot extract {m.raw_name!r}: {e.strerror}")


def unpack_layer(stream: BinaryIO, layers_dir: Path, work_dir: Path | None = None) -> LayerInfo:
    """Unpacks a (gzip/zstd/bzip2/xz/plain) layer tar into layers_dir/<diff_id hex>/diff in one pass.

    The work happens in a directory under work_dir (the process's scratch dir under the root's tmp/, on the
    same filesystem; default: a hidden sibling) renamed into place at the end, so a half-unpacked layer is
    never visible, and one a killed process left is removed with its scratch dir at the next start-up; if
    another process unpacked the same layer meanwhile, ours is discarded."""
    layers_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=work_dir or layers_dir))
    raw = None
    try:
        os.chmod(work, 0o700)
        (work / "diff").mkdir(mode=0o755)
        split = SplitWriter(work / "tar-split.gz")
        raw, compression = decompressed(stream)
        src = Source(raw, on_meta=split.meta)
        writer = _Writer(work / "diff", layer=True, scratch=work)
        try:
            size = _run(src, writer, split, work / "stash")
        finally:
            src.close()
            writer.close()
            split.close()
        diff_id = src.digest
        final = layers_dir / diff_id.split(":", 1)[1]
        (work / "meta.json").write_text(json.dumps({"diff_id": diff_id, "size": size,
                                                   "tar_size": src.size}))
        os.chmod(work, 0o700)  # a layer holds setuid binaries: root only (the layers dir is 0700 too)
        try:
            os.rename(work, final)
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            remove_tree(work)  # someone else got there first: same content
        return LayerInfo(diff_id=diff_id, size=size, compression=compression, path=final)
    except BaseException:
        remove_tree(work)
        raise
    finally:
        close = getattr(raw, "close", None)
        if close is not None and raw is not stream:
            close()


def extract_into(dest_dir: str | os.PathLike, stream: BinaryIO, path_in_root: str = "/", *,
                 no_overwrite_dir_non_dir: bool = False, owner: tuple[int, int] | None = None,
                 digests: ContentDigests | None = None) -> None:
    """`docker cp` upload: extracts a (possibly compressed) tar into the directory path_in_root of dest_dir,
    treating dest_dir as "/" — symlinks already there (or in the archive) resolve inside it. No whiteout
    handling. owner, when given, overrides the archive's uid/gid; digests, when given, collects the content
    digest of every file written (paths relative to dest_dir).
    Raises FileNotInRoot when path_in_root does not exist, InvalidParameter when it is not a directory."""
    root_fd = fstree.open_root(dest_dir)
    try:
        fd, names, leaf = fstree.resolve_in_root(root_fd, fstree.split(path_in_root))
        try:
            if leaf is not None:
                os.stat(leaf, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotInRoot(path_in_root) from None
    finally:
        os.close(root_fd)
    if leaf is not None:
        raise InvalidParameter("extraction point is not a directory")
    buffered = buffered_reader(stream)
    raw, _ = decompressed(buffered)
    try:
        writer = _Writer(Path(dest_dir), layer=False, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                         owner=owner, base="/".join(names), digests=digests)
        src = Source(raw, digest=False)
        try:
            _run(src, writer, None, None)
        finally:
            src.close()
            writer.close()
    finally:
        close = getattr(raw, "close", None)
        if close is not None and raw is not buffered:
            close()
        release(buffered, stream)
