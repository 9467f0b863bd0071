"""Removing a directory tree however deep it is (a container or an archive decides the depth)."""

from __future__ import annotations

import errno
import os

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str | os.PathLike, ignore_errors: bool = True, dir_fd: int | None = None) -> None:
    """`rm -rf path` with an explicit stack of directory fds, never following a symlink. shutil.rmtree
    recurses once per level (Python 3.11), so a tree a container made 1,100 levels deep raised
    RecursionError and the container could not be removed; here depth costs one fd per level.
    With dir_fd, path is a name in that directory (as shutil.rmtree's dir_fd)."""
    if dir_fd is not None:
        pfd, top = os.dup(dir_fd), os.fspath(path)
    else:
        parent, top = os.path.split(os.path.abspath(path))
        try:
            pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
    stack: list[tuple[int, list[str], str]] = []  # (dir fd, names left to remove, its name in its parent)

    def attempt(fn, *args, **kw) -> bool:
        try:
            fn(*args, **kw)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if not ignore_errors:
                raise
            return False

    try:
        try:
            fd = os.open(top, O_DIR, dir_fd=pfd)
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            attempt(os.unlink, top, dir_fd=pfd)
            return
        stack.append((fd, os.listdir(fd), top))
        while stack:
            fd, names, name = stack[-1]
            if not names:
                stack.pop()
                os.close(fd)
                attempt(os.rmdir, name, dir_fd=stack[-1][0] if stack else pfd)
                continue
            child = names.pop()
            try:
                os.unlink(child, dir_fd=fd)
                continue
            except FileNotFoundError:
                continue
            except IsADirectoryError:
                pass
            except OSError:
                if not ignore_errors:
                    raise
                continue
            try:
                cfd = os.open(child, O_DIR, dir_fd=fd)
                stack.append((cfd, os.listdir(cfd), child))
            except OSError:
                if not ignore_errors:
                    raise
    finally:
        for fd, _, _ in stack:
            os.close(fd)
        os.close(pfd)
