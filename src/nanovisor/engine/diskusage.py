"""Bytes used under a directory (a container's writable layer, for `ps -s`, `system df`, prune)."""

from __future__ import annotations

from pathlib import Path


def du(path: Path) -> int:
    total = 0
    try:
        for p in path.rglob("*"):
            try:
                st = p.lstat()
                total += st.st_size if not p.is_dir() else 0
            except OSError:
                pass
    except OSError:
        pass
    return total
