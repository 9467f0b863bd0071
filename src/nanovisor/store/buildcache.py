"""The build_cache table: (digest of a build step's facts) → the image that step made, and its parent."""

from __future__ import annotations

from nanovisor.store.db import Database


class BuildCacheTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> str | None:
        row = self.db.query_one("SELECT image_id FROM build_cache WHERE key = ?", (key,))
        return row["image_id"] if row else None

    def put(self, key: str, image_id: str, parent_id: str, created: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO build_cache (key, image_id, parent_id, created) VALUES (?,?,?,?)",
                        (key, image_id, parent_id, created))

    def delete(self, key: str) -> None:
        self.db.execute("DELETE FROM build_cache WHERE key = ?", (key,))

    def parents(self) -> set[str]:
        return {r["parent_id"] for r in self.db.query("SELECT DISTINCT parent_id FROM build_cache")}
