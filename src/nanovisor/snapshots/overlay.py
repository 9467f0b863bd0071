"""Container root filesystems on overlayfs.

The merged dir is mounted in the host mount namespace so the engine can reach a container's files (cp, export)
whether or not it runs; the runtime pivots into it. Mounting is idempotent: after a reboot the first use
mounts again.
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
from pathlib import Path

from nanovisor.errors import SystemError_
from nanovisor.rmtree import remove_tree

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MNT_DETACH = 2
_PAGE = 4096  # overlay's mount data must fit one page


def mount(source: str, target: str, fstype: str, options: str = "", flags: int = 0) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, options.encode() or None) != 0:
        err = ctypes.get_errno()
        raise SystemError_(f"mount {fstype} on {target}: {os.strerror(err)}")


def unmount(target: str | os.PathLike) -> None:
    if _libc.umount2(os.fsencode(target), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # not mounted / gone: already what we want
            raise SystemError_(f"unmount {target}: {os.strerror(err)}")


def is_mounted(target: str | os.PathLike) -> bool:
    target = os.fsencode(os.path.realpath(target))
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            if line.split(b" ", 5)[4] == target:
                return True
    return False


class OverlaySnapshot:
    """The writable layer of one container: upper/ and work/ beside the merged/ mount point."""

    def __init__(self, container_dir: Path) -> None:
        self.dir = container_dir
        self.upper = container_dir / "upper"
        self.work = container_dir / "work"
        self.merged = container_dir / "merged"

    def prepare(self) -> None:
        for d in (self.upper, self.work, self.merged):
            d.mkdir(parents=True, exist_ok=True)
        self.upper.chmod(0o755)

    def mount(self, lower_dirs: list[Path]) -> Path:
        """Mount lower_dirs (top-most first) under the upper dir; no-op when already mounted."""
        if is_mounted(self.merged):
            return self.merged
        if not lower_dirs:  # an empty image (FROM scratch + nothing): overlay needs one lower dir
            empty = self.dir / "empty"
            empty.mkdir(exist_ok=True)
            lower_dirs = [empty]
        opts = f"lowerdir={':'.join(map(str, lower_dirs))},upperdir={self.upper},workdir={self.work}"
        if len(opts) < _PAGE:
            mount("overlay", str(self.merged), "overlay", opts)
        else:  # too many layers for one page: mount from their parent dir with relative paths
            common = os.path.commonpath([str(p) for p in lower_dirs])
            rel = ":".join(os.path.relpath(p, common) for p in lower_dirs)
            opts = f"lowerdir={rel},upperdir={self.upper},workdir={self.work}"
            subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(self.merged)], cwd=common,
                           check=True, capture_output=True)
        return self.merged

    def unmount(self) -> None:
        if self.merged.exists():
            unmount(self.merged)

    def remove(self) -> None:
        self.unmount()
        remove_tree(self.dir, ignore_errors=True)
