"""The legacy builder's layer cache: (parent image, step, resulting config) → the image that step made.

moby finds a cached step by scanning the parent's children for an identical container config; we key a
table by a digest of the same facts, which is one indexed lookup. The rows also remember each step image's
parent, so the image list can hide intermediate images the way `docker images` does (without -a)."""

from __future__ import annotations

import hashlib
import json
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS build_cache_parent ON build_cache (parent_id);
CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache (image_id);
"""


def step_key(parent_id: str, created_by: str, config: dict) -> str:
    blob = json.dumps({"parent": parent_id, "cmd": created_by, "config": config}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class BuildCache:
    def __init__(self, db) -> None:
        self.db = db
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)

    def lookup(self, key: str, images) -> str | None:
        row = self.db.query_one("SELECT image_id FROM build_cache WHERE key=?", (key,))
        if row is None:
            return None
        if not images.exists(row["image_id"]):
            self.db.execute("DELETE FROM build_cache WHERE key=?", (key,))  # pruned since: rebuild the step
            return None
        return row["image_id"]

    def store(self, key: str, image_id: str, parent_id: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO build_cache (key, image_id, parent_id, created) VALUES (?,?,?,?)",
                        (key, image_id, parent_id, time.time()))


def intermediate_ids(db) -> set[str]:
    """Images some cached build step was built on: what `docker images` (without -a) leaves out."""
    try:
        return {r["parent_id"] for r in db.query("SELECT DISTINCT parent_id FROM build_cache")}
    except Exception:  # noqa: BLE001 - a root that never built has no such table
        return set()
