"""Helpers for image store tests: fresh roots, hand-made tars and one-layer images."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from nanovisor.images.store import ImageStore
from nanovisor.paths import Paths
from nanovisor.store.db import Database


def make_store(root: Path) -> ImageStore:
    paths = Paths.for_root(root)
    for d in (paths.root, paths.blobs, paths.layers, paths.tmp):
        d.mkdir(parents=True, exist_ok=True)
    return ImageStore(paths, Database(paths.db))


def build_tar(entries: list[dict], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """entries: {"name", "type" (tarfile type), "data", "linkname", "mode", "uid", "gid", "mtime",
    "pax", "devmajor", "devminor"}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.type = e.get("type", tarfile.REGTYPE)
            data = e.get("data", b"")
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            ti.linkname = e.get("linkname", "")
            ti.mode = e.get("mode", 0o755 if ti.type == tarfile.DIRTYPE else 0o644)
            ti.uid, ti.gid = e.get("uid", 0), e.get("gid", 0)
            ti.mtime = e.get("mtime", 1_600_000_000)
            ti.devmajor, ti.devminor = e.get("devmajor", 0), e.get("devminor", 0)
            if "pax" in e:
                ti.pax_headers = e["pax"]
            tar.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def simple_image(store: ImageStore, files: dict[str, bytes], ref: str | None = None, **config) -> tuple:
    """A one-layer image from a dict of files; returns (image, layer tar bytes)."""
    from nanovisor.images.store import rfc3339

    tar = build_tar([{"name": n, "data": d} for n, d in sorted(files.items())])
    diff_id = store.add_layer(io.BytesIO(tar))
    cfg = {"architecture": "amd64", "os": "linux", "created": rfc3339(config.pop("created", 1_700_000_000)),
           "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], **config},
           "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    return store.create_image(cfg, ref), tar
