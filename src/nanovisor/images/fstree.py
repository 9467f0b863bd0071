"""Walking a directory tree through file descriptors, so that nothing an archive or a container put there
(symlinks above all) can make us touch a host path outside it.

Two ways to resolve a path below the root:
- strict: every component must be a real directory (a symlink is an error) — for layer directories we fill;
- in_root: symlinks are followed but resolved as if the root were "/" (".." stops at the root), the way the
  container sees its own filesystem — for `docker cp` into/out of a container rootfs.
"""

from __future__ import annotations

import errno
import os
import stat

from nanovisor.errors import InvalidParameter

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 40


class Escape(InvalidParameter):
    """A path that would leave the tree or go through a symlink where that is not allowed."""


def open_root(path: str | os.PathLike) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_child(dir_fd: int, name: str, create: bool = False, mode: int = 0o755, shown: str = "") -> int:
    """A new fd for the directory dir_fd/name, which must be a real directory (a symlink is an error); made
    when missing and asked to. shown is the path used in error messages."""
    try:
        return os.open(name, O_DIR, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Escape(f"invalid tar: {shown or name!r} is a symlink and the archive writes through it") from None
        if e.errno == errno.ENOTDIR:
            raise InvalidParameter(f"invalid tar: {shown or name!r} is not a directory") from None
        raise
    try:
        os.mkdir(name, mode, dir_fd=dir_fd)
    except FileExistsError:
        pass  # raced with ourselves? open again below and let it fail properly if it is not a directory
    return open_child(dir_fd, name, False, mode, shown)


def walk_strict(root_fd: int, parts: list[str], create: bool = False, mode: int = 0o755) -> int:
    """A new fd for root/parts where no component may be a symlink; creates missing dirs when asked."""
    fd = os.dup(root_fd)
    try:
        for i, p in enumerate(parts):
            nfd = open_child(fd, p, create, mode, "/".join(parts[:i + 1]))
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def resolve_in_root(root_fd: int, parts: list[str], create: bool = False) -> tuple[int, list[str], str | None]:
    """Resolves root/parts with symlinks followed inside the root. Returns (fd, names, leaf): when everything
    resolves to a directory, fd is that directory and leaf is None; when the final entry is not a directory
    (or does not exist), fd is its parent and leaf its name. `names` is the resolved path from the root.
    With create, missing directories are made."""
    stack = [os.dup(root_fd)]
    names: list[str] = []
    todo = [p for p in parts if p not in ("", ".")]
    links = 0
    leaf = None
    try:
        while todo:
            comp = todo.pop(0)
            if comp in ("", "."):
                continue
            if comp == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                    names.pop()
                continue
            cur = stack[-1]
            try:
                st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    if todo:
                        raise
                    leaf = comp
                    names.append(comp)
                    break
                os.mkdir(comp, 0o755, dir_fd=cur)
                st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise InvalidParameter(f"too many levels of symbolic links: {'/'.join(parts)}")
                target = os.readlink(comp, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    names.clear()
                todo[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            if not stat.S_ISDIR(st.st_mode):
                if todo:
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", "/" + "/".join(parts))
                leaf = comp
                names.append(comp)
                break
            stack.append(os.open(comp, O_DIR, dir_fd=cur))
            names.append(comp)
        return stack.pop(), names, leaf
    finally:
        for fd_ in stack:
            os.close(fd_)


def split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]
