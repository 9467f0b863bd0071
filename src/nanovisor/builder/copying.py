"""COPY and ADD into a mounted image rootfs, with moby's destination rules: a trailing "/" or an existing
directory means "into", several sources need a directory, a source directory contributes its content,
missing parent directories are made (owned by --chown's user), and ADD unpacks local tar archives.

Everything is written through the images helpers' extract_into, which resolves every path inside the rootfs:
a symlink in the image cannot send a copy to the host."""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Iterator
from pathlib import Path

from nanovisor.builder.context import Source, dir_entry, source_entries
from nanovisor.builder.layertar import as_file
from nanovisor.errors import InvalidParameter


def is_remote(src: str) -> bool:
    return src.startswith(("http://", "https://", "git@", "git://"))


def _kind(root: Path, rel: str) -> str | None:
    """"dir", "file" or None for rel resolved inside root."""
    from nanovisor.images import fstree

    root_fd = fstree.open_root(root)
    try:
        fd, _names, leaf = fstree.resolve_in_root(root_fd, fstree.split(rel))
    except (FileNotFoundError, NotADirectoryError):
        return None
    finally:
        os.close(root_fd)
    try:
        if leaf is None:
            return "dir"
        try:
            os.stat(leaf, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return "file"
    finally:
        os.close(fd)


def _missing_dirs(root: Path, rel_dir: str) -> Iterator[bytes]:
    """Directory entries for the components of rel_dir that do not exist yet (existing ones keep their
    owner and mode)."""
    parts = [p for p in rel_dir.split("/") if p]
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if _kind(root, prefix) is None:
            yield dir_entry(prefix)


def is_archive(path: Path) -> bool:
    """A local tar (plain or compressed) that ADD unpacks, as moby's isArchivePath."""
    from nanovisor.images.tarstream import decompressed

    try:
        with open(path, "rb") as f:
            raw, _ = decompressed(f)
            head = raw.read(512)
    except (OSError, EOFError, ValueError):
        return False
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def resolve_owner(rootfs: Path, chown: str) -> tuple[int, int]:
    from nanovisor.runtime.users import resolve_user

    if not chown:
        return 0, 0
    spec = chown if ":" in chown else f"{chown}:{chown}"
    try:
        uid, gid, _ = resolve_user(str(rootfs), spec)
    except InvalidParameter as e:
        raise InvalidParameter(f"unable to convert uid/gid chown string to host mapping: {e}") from None
    return uid, gid


def perform_copy(rootfs: Path, sources: list[Source], dest: str, workdir: str, cmd: str, *,
                 chown: str = "", chmod: str = "", decompress: bool = False) -> None:
    """Copies sources into rootfs (a mounted overlay) at dest (relative to workdir when not absolute)."""
    from nanovisor.images.unpack import extract_into

    ends_in_slash = dest.endswith("/") or dest.endswith("/.") or dest in (".", "")
    full = dest if dest.startswith("/") else posixpath.join("/", workdir or "/", dest)
    rel = posixpath.normpath(full).lstrip("/")
    if rel == ".":
        rel = ""
    if len(sources) > 1 and not ends_in_slash:
        raise InvalidParameter(f"When using {cmd} with more than one source file, the destination must be a "
                               f"directory and end with a /")
    owner = resolve_owner(rootfs, chown)
    mode = None
    if chmod:
        try:
            mode = int(chmod, 8)
        except ValueError:
            raise InvalidParameter(f"invalid chmod parameter: {chmod}") from None
    dest_kind = _kind(rootfs, rel) if rel else "dir"

    def entries() -> Iterator[bytes]:
        for src in sources:
            host = src.root.root / src.rel if src.rel else src.root.root
            if src.is_dir:
                yield from _missing_dirs(rootfs, rel)
                yield from source_entries(src, rel, mode)
            elif decompress and is_archive(host):
                continue  # unpacked below, with the archive's own owners
            else:
                into = ends_in_slash or dest_kind == "dir"
                target = posixpath.join(rel, src.name) if into else rel
                yield from _missing_dirs(rootfs, posixpath.dirname(target))
                yield from source_entries(src, target, mode)
        yield b"\0" * 1024

    extract_into(rootfs, as_file(entries()), "/", owner=owner)
    if decompress:
        for src in sources:
            host = src.root.root / src.rel if src.rel else src.root.root
            if not src.is_dir and is_archive(host):
                extract_into(rootfs, as_file(iter([*_missing_dirs(rootfs, rel), b"\0" * 1024])), "/",
                             owner=owner)
                with open(host, "rb") as f:
                    extract_into(rootfs, f, "/" + rel)
