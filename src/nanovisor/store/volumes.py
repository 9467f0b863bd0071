"""The volumes table: one row per named or anonymous volume (its directory lives under Paths.volumes)."""

from __future__ import annotations

from dataclasses import dataclass

from nanovisor.store.db import Database, dumps, loads


@dataclass
class VolumeRow:
    name: str
    created: float
    driver: str
    labels: dict
    options: dict


class VolumeTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, name: str) -> VolumeRow | None:
        r = self.db.query_one("SELECT * FROM volumes WHERE name = ?", (name,))
        return VolumeRow(r["name"], r["created"], r["driver"], loads(r["labels"]) or {},
                         loads(r["options"]) or {}) if r else None

    def exists(self, name: str) -> bool:
        return self.db.query_one("SELECT 1 FROM volumes WHERE name = ?", (name,)) is not None

    def all(self) -> list[VolumeRow]:
        return [VolumeRow(r["name"], r["created"], r["driver"], loads(r["labels"]) or {}, loads(r["options"]) or {})
                for r in self.db.query("SELECT * FROM volumes ORDER BY name")]

    def insert_new(self, row: VolumeRow) -> bool:
        """Adds the volume unless one of that name exists; True if added."""
        cur = self.db.execute("INSERT OR IGNORE INTO volumes (name, created, driver, labels, options) "
                              "VALUES (?,?,?,?,?)", (row.name, row.created, row.driver, dumps(row.labels),
                                                     dumps(row.options)))
        return cur.rowcount > 0

    def delete(self, name: str) -> None:
        self.db.execute("DELETE FROM volumes WHERE name = ?", (name,))
