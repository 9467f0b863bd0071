"""Tar streams out of a directory tree (`docker export`, `docker cp` downloads), read through directory fds
so a container that swaps a directory for a symlink mid-walk cannot make us read host files."""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator

from nanovisor.errors import NotFound
from nanovisor.images import fstree

CHUNK = 1 << 20

# Go os.FileMode bits (X-Docker-Container-Path-Stat "mode")
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHARDEV = 1 << 21
GO_STICKY = 1 << 20


class FileNotInRoot(NotFound):
    """The path does not exist in the tree; the engine words it as moby does:
    "Could not find the file {path} in container {name}"."""

    def __init__(self, path: str) -> None:
        super().__init__(f"Could not find the file {path}")
        self.path = path


def go_mode(st_mode: int) -> int:
    mode = st_mode & 0o777
    fmt = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFBLK: GO_DEVICE,
             stat.S_IFCHR: GO_DEVICE | GO_CHARDEV, stat.S_IFIFO: GO_PIPE, stat.S_IFSOCK: GO_SOCKET}.get(fmt, 0)
    if st_mode & stat.S_ISUID:
        mode |= GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_STICKY
    return mode


def _rfc3339(t: float) -> str:
    from nanovisor.images.store import rfc3339

    return rfc3339(t)


class _TarOut:
    """Turns lstat results into tar members; remembers inodes to emit hard links."""

    def __init__(self) -> None:
        self.inodes: dict[tuple[int, int], str] = {}

    def header(self, name: str, st: os.stat_result, link: str = "", caps: bytes | None = None,
               hardlink: str = "") -> bytes:
        ti = tarfile.TarInfo(name)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        ti.mtime = int(st.st_mtime)
        fmt = stat.S_IFMT(st.st_mode)
        if hardlink:
            ti.type, ti.linkname = tarfile.LNKTYPE, hardlink
        elif fmt == stat.S_IFDIR:
            ti.type = tarfile.DIRTYPE
        elif fmt == stat.S_IFLNK:
            ti.type, ti.linkname = tarfile.SYMTYPE, link
        elif fmt == stat.S_IFCHR or fmt == stat.S_IFBLK:
            ti.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif fmt == stat.S_IFIFO:
            ti.type = tarfile.FIFOTYPE
        else:
            ti.type = tarfile.REGTYPE
            ti.size = st.st_size
        if caps:
            ti.pax_headers = {"SCHILY.xattr.security.capability": caps.decode("latin-1")}
        return ti.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")

    def entry(self, dir_fd: int, base: str, name: str) -> Iterator[bytes]:
        """One entry, and for a directory everything below it; name is its path in the archive. An explicit
        stack of open directories instead of recursion: a container can make a tree thousands of levels deep
        (recursion stopped at ~1,000 with RecursionError)."""
        stack: list[tuple[int, Iterator[str], str]] = []  # (dir fd, its children left, its archive name)
        try:
            yield from self._one(dir_fd, base, name, stack)
            while stack:
                fd, children, parent = stack[-1]
                child = next(children, None)
                if child is None:
                    stack.pop()
                    os.close(fd)
                    continue
                yield from self._one(fd, child, f"{parent.rstrip('/')}/{child}" if parent != "." else child, stack)
        finally:
            for fd, _, _ in stack:
                os.close(fd)

    def _one(self, dir_fd: int, base: str, name: str, stack: list) -> Iterator[bytes]:
        """The header (and data) of one entry; a directory is pushed on stack for entry() to walk."""
        try:
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return  # vanished while we walked
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFSOCK:
            return  # sockets are not archived (as moby)
        if fmt == stat.S_IFLNK:
            yield self.header(name, st, link=os.readlink(base, dir_fd=dir_fd))
            return
        if fmt == stat.S_IFDIR:
            try:
                fd = os.open(base, fstree.O_DIR, dir_fd=dir_fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    return  # swapped while we walked: skip rather than follow
                raise
            try:
                children = sorted(os.listdir(fd))
            except OSError:
                os.close(fd)
                raise
            stack.append((fd, iter(children), name))
            yield self.header(name.rstrip("/") + "/", st, caps=file_caps(fd))
            return
        if fmt != stat.S_IFREG:
            yield self.header(name, st)
            return
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1:
            if key in self.inodes:
                yield self.header(name, st, hardlink=self.inodes[key])
                return
            self.inodes[key] = name
        try:
            fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOENT):
                return
            raise
        try:
            yield self.header(name, st, caps=file_caps(fd))
            yield from file_blocks(fd, st.st_size)
        finally:
            os.close(fd)


def file_caps(fd: int) -> bytes | None:
    """The file capabilities a tar entry carries (SCHILY.xattr.security.capability), if any."""
    try:
        return os.getxattr(fd, "security.capability")
    except OSError:
        return None


def file_blocks(fd: int, size: int) -> Iterator[bytes]:
    """A regular file's tar data: size bytes read from fd, then zero padding to the 512-byte block."""
    left = size
    while left:
        chunk = os.read(fd, min(left, CHUNK))
        if not chunk:  # shrank meanwhile: keep the archive well-formed
            chunk = b"\0" * min(left, CHUNK)
        left -= len(chunk)
        yield chunk
    if size % 512:
        yield b"\0" * (512 - size % 512)


def _end() -> bytes:
    return b"\0" * 1024


def export_tar(root_dir: str | os.PathLike) -> Iterator[bytes]:
    """`docker export`: the whole tree, member names relative ("bin/sh"), no entry for the root itself."""
    root_fd = fstree.open_root(root_dir)
    out = _TarOut()
    try:
        for child in sorted(os.listdir(root_fd)):
            yield from out.entry(root_fd, child, child)
        yield _end()
    finally:
        os.close(root_fd)


def _locate_entry(root_dir: str | os.PathLike, path_in_root: str) -> tuple[dict, int, str | None, list[str]]:
    """(stat dict, parent fd, leaf name or None for a directory, resolved components). The caller closes the
    fd. A trailing "/" or "/." follows a final symlink; otherwise the entry itself is described."""
    root_fd = fstree.open_root(root_dir)
    try:
        parts = fstree.split(path_in_root)
        follow = path_in_root.endswith("/") or path_in_root.endswith("/.") or not parts
        try:
            if follow:
                fd, names, leaf = fstree.resolve_in_root(root_fd, parts)
                if leaf is not None:
                    try:
                        os.stat(leaf, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        os.close(fd)
                        raise
            else:
                pfd, pnames, pleaf = fstree.resolve_in_root(root_fd, parts[:-1])
                if pleaf is not None:
                    os.close(pfd)
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory")
                fd, leaf, names = pfd, parts[-1], [*pnames, parts[-1]]
            st = os.stat(leaf, dir_fd=fd, follow_symlinks=False) if leaf is not None else os.fstat(fd)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotInRoot(path_in_root) from None
        link_target = ""
        if stat.S_ISLNK(st.st_mode):
            tfd, tnames, _tleaf = fstree.resolve_in_root(root_fd, names)
            os.close(tfd)
            link_target = "/" + "/".join(tnames)
        name = "." if path_in_root.endswith("/.") and names else (names[-1] if names else "/")
        info = {"name": name, "size": st.st_size, "mode": go_mode(st.st_mode),
                "mtime": _rfc3339(st.st_mtime), "linkTarget": link_target}
        return info, fd, leaf, names
    finally:
        os.close(root_fd)


def stat_path(root_dir: str | os.PathLike, path_in_root: str) -> dict:
    """X-Docker-Container-Path-Stat for HEAD /containers/{id}/archive (path resolved inside root_dir).
    Raises FileNotInRoot (a NotFound) when it does not exist."""
    info, fd, _leaf, _names = _locate_entry(root_dir, path_in_root)
    os.close(fd)
    return info


def tar_path(root_dir: str | os.PathLike, path_in_root: str) -> tuple[dict, Iterator[bytes]]:
    """`docker cp` download: (stat dict, tar stream) of path_in_root resolved inside root_dir; the archive's
    top entry is named after the path's base name (as moby's archive of a container path); for "dir/." the
    directory's content comes without a top entry, and "/" or "/." gives `docker export`'s layout."""
    info, fd, _leaf, _names = _locate_entry(root_dir, path_in_root)
    os.close(fd)  # resolved again when the stream starts: an unread stream holds no fd

    def stream() -> Iterator[bytes]:
        _info, fd, leaf, names = _locate_entry(root_dir, path_in_root)
        try:
            out = _TarOut()
            content_only = not names or path_in_root.endswith("/.")
            top = names[-1] if names else ""
            if leaf is None:  # a directory: fd is the directory itself
                if not content_only:
                    yield out.header(top + "/", os.fstat(fd))
                for child in sorted(os.listdir(fd)):
                    yield from out.entry(fd, child, child if content_only else f"{top}/{child}")
            else:
                yield from out.entry(fd, leaf, top)
            yield _end()
        finally:
            os.close(fd)

    return info, stream()

