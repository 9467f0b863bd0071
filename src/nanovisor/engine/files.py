"""`docker cp` and `docker export`: files of a container, running or not, reached from the host.

A path inside a volume or bind mount is served from the mount's source, like dockerd does, because the
overlay rootfs does not show what the container has mounted over it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from nanovisor.errors import InvalidParameter, NotFound


def _locate(engine, c, path: str) -> tuple[Path, str]:
    """(host directory acting as '/', path below it) for a path inside the container."""
    root, inner, _ = _locate_mount(engine, c, path)
    return root, inner


def _locate_mount(engine, c, path: str) -> tuple[Path, str, dict | None]:
    """_locate, and the volume or bind mount point the path is in (None: the rootfs)."""
    if not path:
        raise InvalidParameter("Path cannot be empty")
    if len(path.encode()) > 4095 or any(len(part.encode()) > 255 for part in path.split("/")):
        raise InvalidParameter(f"invalid path {path[:60]!r}...: file name too long")
    clean = posixpath.normpath("/" + path.lstrip("/"))  # (normpath keeps a leading "//")
    best = None
    for p in c.spec.get("MountPoints") or []:
        dest = p["Destination"]
        if p["Type"] in ("bind", "volume") and (clean == dest or clean.startswith(dest.rstrip("/") + "/")):
            if best is None or len(dest) > len(best["Destination"]):
                best = p
    if best is not None:
        rest = clean[len(best["Destination"]):] or "/"
        return Path(best["Source"]), rest, best
    rootfs = engine.lifecycle.mount_rootfs(c)
    return rootfs, clean, None


def _keep_trailing(original: str, resolved: str) -> str:
    """`docker cp ctr:/dir/. x` copies the content: the tar helpers get the trailing "/." back."""
    if original.endswith("/.") and not resolved.endswith("/."):
        return resolved.rstrip("/") + "/."
    if original.endswith("/") and not resolved.endswith("/"):
        return resolved + "/"
    return resolved


def stat(engine, c, path: str) -> dict:
    from nanovisor.images.unpack import FileNotInRoot, stat_path

    root, inner = _locate(engine, c, path)
    try:
        return stat_path(str(root), inner)
    except FileNotInRoot as e:
        raise NotFound(f"Could not find the file {path} in container {c.name}") from e


def get_archive(engine, c, path: str) -> tuple[dict, Iterator[bytes]]:
    from nanovisor.images.unpack import FileNotInRoot, tar_path

    root, inner = _locate(engine, c, path)
    try:
        return tar_path(str(root), _keep_trailing(path, inner))
    except FileNotInRoot as e:
        raise NotFound(f"Could not find the file {path} in container {c.name}") from e


def put_archive(engine, c, path: str, stream: BinaryIO) -> None:
    from nanovisor.images.unpack import extract_into

    root, inner, mount = _locate_mount(engine, c, path)
    if mount is None and c.host_config.get("ReadonlyRootfs"):
        raise InvalidParameter("container rootfs is marked read-only")
    if mount is not None and not mount.get("RW", True):
        raise InvalidParameter("mounted volume is marked read-only")
    extract_into(str(root), stream, inner)


def export(engine, c) -> Iterator[bytes]:
    from nanovisor.images.unpack import tar_path

    rootfs = engine.lifecycle.mount_rootfs(c)
    _, stream = tar_path(str(rootfs), "/.")
    return stream
