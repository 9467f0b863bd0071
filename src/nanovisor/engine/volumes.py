"""Named and anonymous volumes: directories under <root>/volumes/<name>/_data (the `local` driver)."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from nanovisor.engine.filters import match_labels
from nanovisor.engine.timefmt import rfc3339
from nanovisor.errors import Conflict, InvalidParameter, no_such_volume
from nanovisor.rmtree import remove_tree
from nanovisor.store.db import Database
from nanovisor.store.volumes import VolumeRow, VolumeTable

_VALID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


class VolumeStore:
    def __init__(self, root: Path, db: Database) -> None:
        self.root = root
        self.db = db
        self.table = VolumeTable(db)

    def path(self, name: str) -> Path:
        return self.root / name / "_data"

    def create(self, name: str | None = None, labels: dict | None = None, options: dict | None = None,
               driver: str = "local", anonymous: bool = False) -> dict:
        if driver not in ("local", ""):
            raise InvalidParameter(f"volume driver {driver!r} is not supported (only local)")
        if not name:
            name = secrets.token_hex(32)
            anonymous = True
        if not _VALID.match(name):
            raise InvalidParameter(f'create {name}: "{name}" includes invalid characters for a local volume '
                                   f'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
                                   f"a host directory, use absolute path")
        labels = dict(labels or {})
        if anonymous:
            labels.setdefault("com.docker.volume.anonymous", "")
        with self.db.transaction():
            if self.table.insert_new(VolumeRow(name, time.time(), "local", labels, options or {})):
                self.path(name).mkdir(parents=True, exist_ok=True)
        return self.inspect(name)

    def exists(self, name: str) -> bool:
        return self.table.exists(name)

    def inspect(self, name: str) -> dict:
        row = self.table.get(name)
        if row is None:
            raise no_such_volume(name)
        return self._view(row)

    def _view(self, row: VolumeRow) -> dict:
        return {"Name": row.name, "Driver": row.driver, "Mountpoint": str(self.path(row.name)),
                "CreatedAt": rfc3339(row.created).split(".")[0] + "Z", "Labels": row.labels,
                "Scope": "local", "Options": row.options}

    def list(self) -> list[dict]:
        return [self._view(r) for r in self.table.all()]

    def remove(self, name: str, users: list[str]) -> None:
        """users: ids of containers that mount it (any state): Docker refuses then, even with force."""
        if not self.exists(name):
            raise no_such_volume(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self.table.delete(name)
        remove_tree(self.root / name, ignore_errors=True)

    def size(self, name: str) -> int:
        total = 0
        for p in self.path(name).rglob("*"):
            try:
                if p.is_file() and not p.is_symlink():
                    total += p.stat().st_size
            except OSError:
                pass
        return total


def volume_users(containers) -> dict[str, list[str]]:
    """volume name → ids of the containers that mount it (any state)."""
    users: dict[str, list[str]] = {}
    for c in containers.list():
        for p in c.spec.get("MountPoints") or []:
            if p["Type"] == "volume":
                users.setdefault(p["Name"], []).append(c.id)
    return users


def list_volumes(volumes: VolumeStore, users: dict[str, list[str]], filters: dict[str, list[str]]) -> list[dict]:
    """`volume ls` with Docker's name, label, dangling and driver filters."""
    out = []
    for v in volumes.list():
        if "name" in filters and not any(f in v["Name"] for f in filters["name"]):
            continue
        if "label" in filters and not match_labels(v["Labels"], filters["label"]):
            continue
        if "dangling" in filters:
            want = filters["dangling"][0].lower() in ("1", "true")
            if want == bool(users.get(v["Name"])):
                continue
        if "driver" in filters and v["Driver"] not in filters["driver"]:
            continue
        out.append(v)
    return out


def prune_volumes(volumes: VolumeStore, users: dict[str, list[str]], filters: dict[str, list[str]],
                  remove) -> dict:
    """Unused anonymous volumes (all unused ones with all=true); remove(name) removes one."""
    all_volumes = (filters.get("all") or ["false"])[0].lower() in ("1", "true")
    deleted, space = [], 0
    for v in volumes.list():
        if users.get(v["Name"]):
            continue
        if not all_volumes and "com.docker.volume.anonymous" not in v["Labels"]:
            continue
        if "label" in filters and not match_labels(v["Labels"], filters["label"]):
            continue
        space += volumes.size(v["Name"])
        remove(v["Name"])
        deleted.append(v["Name"])
    return {"VolumesDeleted": deleted or None, "SpaceReclaimed": space}
