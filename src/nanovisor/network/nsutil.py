"""Network namespaces as bind-mounted files, and running a function inside one.

Python 3.11 has no os.setns/os.unshare, so both go through libc. A namespace switch only affects the
calling thread, so `in_netns` runs the work on a short-lived thread: the engine's own threads never move,
and no helper process is forked (pyroute2's NetNS forks one per namespace, ~50 ms each).
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from nanovisor.errors import SystemError_

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

T = TypeVar("T")


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(src: str, dst: str, flags: int, fstype: str | None = None) -> None:
    _check(_libc.mount(src.encode(), dst.encode(), fstype.encode() if fstype else None, flags, None),
           f"mount {src} {dst}")


def umount(path: str) -> None:
    _check(_libc.umount2(path.encode(), MNT_DETACH), f"umount {path}")


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def is_mountpoint(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def _on_thread(fn: Callable[[], T], enter: Callable[[], None]) -> T:
    """Run fn on a fresh OS thread after enter(); the thread dies with whatever namespace it joined."""
    box: dict = {}

    def body() -> None:
        try:
            enter()
            box["value"] = fn()
        except BaseException as e:  # noqa: B036 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=body, name="nanovisor-netns", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def in_netns(path: str | os.PathLike, fn: Callable[[], T]) -> T:
    """Call fn with the current thread's network namespace set to the one bound at path."""
    def enter() -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd)
        finally:
            os.close(fd)
    return _on_thread(fn, enter)


def _prepare_dir(directory: Path) -> None:
    """Make the netns directory a shared mount of itself (as `ip netns` does with /run/netns) so an
    unmount here propagates into mount namespaces that copied it, and the namespace can really die."""
    directory.mkdir(parents=True, exist_ok=True)
    if not is_mountpoint(directory):
        mount(str(directory), str(directory), MS_BIND | MS_REC)
    mount("none", str(directory), MS_SHARED | MS_REC)


def create(path: Path, setup: Callable[[], None] | None = None) -> None:
    """Create a new network namespace bound at path; setup() runs inside it (e.g. bring lo up)."""
    path = Path(path)
    if path.exists() and is_mountpoint(path):
        return
    _prepare_dir(path.parent)
    path.touch(exist_ok=True)

    def work() -> None:
        mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", str(path), MS_BIND)
        if setup is not None:
            setup()

    try:
        _on_thread(work, lambda: unshare(CLONE_NEWNET))
    except OSError as e:
        delete(path)
        raise SystemError_(f"failed to create network namespace {path}: {e}") from e


def delete(path: Path) -> None:
    """Unmount and remove a namespace file; missing is fine (idempotent)."""
    path = Path(path)
    try:
        umount(str(path))
    except OSError:
        pass
    try:
        path.unlink()
    except FileNotFoundError:
        pass
