"""Fresh engine roots for nano image builds (real SQLite, real layer dirs)."""

from __future__ import annotations

from pathlib import Path

from nanovisor.images.store import ImageStore
from nanovisor.paths import Paths
from nanovisor.store.db import Database


def make_store(root: Path) -> ImageStore:
    paths = Paths.for_root(root)
    for d in (paths.root, paths.blobs, paths.layers, paths.tmp):
        d.mkdir(parents=True, exist_ok=True)
    return ImageStore(paths, Database(paths.db))


def nano(root: Path, *args: str, timeout: float = 300):
    """`nanovisor --root ROOT nano ARGS` as a user runs it."""
    from nvtest import run_cli

    return run_cli(root, "nano", *args, timeout=timeout)
