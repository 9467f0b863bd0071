"""Removing a directory tree however deep and however wide it is (a container or an archive decides both).

shutil.rmtree recurses once per level (Python 3.11: a tree a container made 1,100 levels deep raised
RecursionError and the container could not be removed) and lists each directory whole (a layer of a million
siblings cost hundreds of MB). Here the walk holds one directory fd whatever the depth (descending by name,
climbing back by ".."), streams every listing and deletes as it goes, and never follows a symlink.
"""

from __future__ import annotations

import errno
import os

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str | os.PathLike, ignore_errors: bool = True, dir_fd: int | None = None) -> None:
    """`rm -rf path` (missing is fine). With dir_fd, path is a name in that directory (as shutil.rmtree's
    dir_fd). ignore_errors: best effort, stopping at the first error."""
    try:
        _remove_tree(os.fspath(path), dir_fd)
    except OSError:
        if not ignore_errors:
            raise


def _open_dir(name: str, dir_fd: int | None) -> int | None:
    """An fd of directory `name`; a non-directory there (a symlink included) is unlinked instead, and a missing
    one is fine: None for both."""
    try:
        return os.open(name, O_DIR, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        os.unlink(name, dir_fd=dir_fd)
        return None


def _remove_tree(path: str, dir_fd: int | None) -> None:
    fd = _open_dir(path, dir_fd)
    if fd is None:
        return
    names: list[str] = []   # the path from `path` down to fd
    try:
        while True:
            child, seen = _clear_files(fd)
            if child is not None:
                sub = _open_dir(child, fd)
                if sub is None:
                    continue
                os.close(fd)
                fd = sub
                names.append(child)
                continue
            if seen:
                continue  # entries went by while we deleted: look again until a listing comes back empty
            if not names:
                break
            up = os.open("..", O_DIR, dir_fd=fd)
            os.close(fd)
            fd = up
            try:
                os.rmdir(names.pop(), dir_fd=fd)
            except FileNotFoundError:
                pass
    finally:
        os.close(fd)
    os.rmdir(path, dir_fd=dir_fd)


def _clear_files(fd: int) -> tuple[str | None, int]:
    """Unlinks the non-directories of fd until the first subdirectory; (that subdirectory, entries seen)."""
    seen = 0
    with os.scandir(fd) as it:
        for entry in it:
            seen += 1
            try:
                if entry.is_dir(follow_symlinks=False):
                    return entry.name, seen
                os.unlink(entry.name, dir_fd=fd)
            except FileNotFoundError:
                pass
    return None, seen
