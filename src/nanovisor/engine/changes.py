"""`docker diff`: what a container changed in its filesystem, read from its overlay upper directory.

The upper directory holds exactly what changed: a file there is Added unless the image has it (then Changed), an
overlay whiteout is Deleted, and every directory copied up on the way to a change is Changed — the list dockerd
gives for overlay2. The mount points the runtime creates (/etc/hosts, /proc, ...) are left out, as dockerd keeps
them in its init layer. The walk is iterative: a hostile tree thousands of levels deep costs memory, not a crash.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nanovisor.builder.layertar import RUNTIME_MOUNTPOINTS, LowerView

MODIFIED, ADDED, DELETED = 0, 1, 2


def container_changes(upper: Path, lower_dirs: list[Path]) -> list[dict]:
    """[{"Path": "/tmp", "Kind": 0}, ...] sorted by path (the API's ContainerChangeResponseItem)."""
    lower = LowerView(lower_dirs)
    out: list[dict] = []
    copied_up: set[str] = set()
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            names = os.listdir(upper / rel_dir if rel_dir else upper)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                st = os.lstat(upper / rel)
            except FileNotFoundError:
                continue
            below = lower.lstat(rel)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # whiteout
                if below is not None:
                    out.append({"Path": "/" + rel, "Kind": DELETED})
                continue
            if rel in RUNTIME_MOUNTPOINTS and below is None and _empty(upper / rel, st):
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel)
                if below is not None and _same_meta(st, below):
                    copied_up.add("/" + rel)  # reported only if something below it changed
                    continue
            out.append({"Path": "/" + rel, "Kind": ADDED if below is None else MODIFIED})
    changed_dirs = {parent for c in out for parent in _parents(c["Path"])}
    out += [{"Path": d, "Kind": MODIFIED} for d in copied_up & changed_dirs]
    out.sort(key=lambda c: c["Path"])
    return out


def _parents(path: str):
    while True:
        path = path.rpartition("/")[0]
        if not path:
            return
        yield path


def _same_meta(st: os.stat_result, below: os.stat_result) -> bool:
    return (st.st_mode, st.st_uid, st.st_gid) == (below.st_mode, below.st_uid, below.st_gid)


def _empty(path: Path, st: os.stat_result) -> bool:
    if stat.S_ISDIR(st.st_mode):
        try:
            return not os.listdir(path)
        except OSError:
            return True
    return stat.S_ISREG(st.st_mode) and st.st_size == 0
