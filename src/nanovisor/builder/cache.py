"""The legacy builder's layer cache: (parent image, step, resulting config) → the image that step made.

moby finds a cached step by scanning the parent's children for an identical container config; we key a
table by a digest of the same facts, which is one indexed lookup. The rows also remember each step image's
parent, so the image list can hide intermediate images the way `docker images` does (without -a)."""

from __future__ import annotations

import hashlib
import json
import time

from nanovisor.store.buildcache import BuildCacheTable


def step_key(parent_id: str, created_by: str, config: dict) -> str:
    blob = json.dumps({"parent": parent_id, "cmd": created_by, "config": config}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class BuildCache:
    def __init__(self, db) -> None:
        self.db = db
        self.table = BuildCacheTable(db)

    def lookup(self, key: str, images) -> str | None:
        image_id = self.table.get(key)
        if image_id is None:
            return None
        if not images.exists(image_id):
            self.table.delete(key)  # pruned since: rebuild the step
            return None
        return image_id

    def store(self, key: str, image_id: str, parent_id: str) -> None:
        self.table.put(key, image_id, parent_id, time.time())


def intermediate_ids(db) -> set[str]:
    """Images some cached build step was built on: what `docker images` (without -a) leaves out."""
    return BuildCacheTable(db).parents()
