"""The image tables: images, their references, unpacked layers with their leases, and what we know of
compressed registry blobs. ImageStore (images/store.py) and the registry code (images/registry/blobmeta.py)
call these; the crash-safety rules (leases, rename-then-commit) are theirs, the SQL is here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nanovisor.store.db import Database


@dataclass
class ImageRow:
    id: str
    created: float
    config: dict
    size: int


@dataclass
class BlobRow:
    digest: str
    diff_id: str
    media_type: str
    size: int


def _image(r) -> ImageRow:
    return ImageRow(r["id"], r["created"], json.loads(r["config"]), r["size"])


def _marks(items) -> str:
    return ",".join("?" * len(items))


class ImageTables:
    def __init__(self, db: Database) -> None:
        self.db = db

    # images --------------------------------------------------------------------------------------------
    def image(self, image_id: str) -> ImageRow | None:
        r = self.db.query_one("SELECT id, created, config, size FROM images WHERE id = ?", (image_id,))
        return _image(r) if r else None

    def images(self) -> list[ImageRow]:
        """Newest first."""
        return [_image(r) for r in self.db.query("SELECT id, created, config, size FROM images "
                                                 "ORDER BY created DESC")]

    def exists(self, image_id: str) -> bool:
        return self.db.query_one("SELECT 1 FROM images WHERE id = ?", (image_id,)) is not None

    def count(self) -> int:
        return self.db.query_one("SELECT COUNT(*) AS n FROM images")["n"]

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Ids starting with prefix ("sha256:<hex>"), by index range."""
        return [r["id"] for r in self.db.query("SELECT id FROM images WHERE id >= ? AND id < ? LIMIT ?",
                                               (prefix, prefix + "g", limit))]

    def config_text(self, image_id: str) -> str | None:
        r = self.db.query_one("SELECT config FROM images WHERE id = ?", (image_id,))
        return r["config"] if r else None

    def insert_image(self, image_id: str, created: float, config_text: str, manifest: dict | None,
                     size: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO images (id, created, config, manifest, size) VALUES (?,?,?,?,?)",
                        (image_id, created, config_text, json.dumps(manifest) if manifest else None, size))

    def delete_image(self, image_id: str) -> None:
        self.db.execute("DELETE FROM images WHERE id = ?", (image_id,))

    def diff_ids_in_use(self) -> set[str]:
        """Layers some image's config names."""
        used: set[str] = set()
        for r in self.db.query("SELECT config FROM images"):
            used.update(json.loads(r["config"]).get("rootfs", {}).get("diff_ids") or [])
        return used

    # references ----------------------------------------------------------------------------------------
    def refs_of(self, image_id: str) -> list[str]:
        return [r["ref"] for r in self.db.query("SELECT ref FROM image_refs WHERE image_id = ? ORDER BY ref",
                                                (image_id,))]

    def all_refs(self) -> list[str]:
        return [r["ref"] for r in self.db.query("SELECT ref FROM image_refs ORDER BY ref")]

    def target(self, ref: str) -> str | None:
        r = self.db.query_one("SELECT image_id FROM image_refs WHERE ref = ?", (ref,))
        return r["image_id"] if r else None

    def target_like(self, pattern: str) -> str | None:
        """The image of the first reference matching a LIKE pattern (name@digest, any case)."""
        r = self.db.query_one("SELECT image_id FROM image_refs WHERE ref LIKE ?", (pattern,))
        return r["image_id"] if r else None

    def put_ref(self, ref: str, image_id: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO image_refs (ref, image_id) VALUES (?, ?)", (ref, image_id))

    def delete_ref(self, ref: str) -> None:
        self.db.execute("DELETE FROM image_refs WHERE ref = ?", (ref,))

    # layers and leases -----------------------------------------------------------------------------------
    def layer_size(self, diff_id: str) -> int | None:
        r = self.db.query_one("SELECT size FROM layers WHERE diff_id = ?", (diff_id,))
        return r["size"] if r else None

    def layers(self) -> list[tuple[str, int]]:
        return [(r["diff_id"], r["size"]) for r in self.db.query("SELECT diff_id, size FROM layers")]

    def add_layer(self, diff_id: str, size: int, created: float) -> None:
        self.db.execute("INSERT OR IGNORE INTO layers (diff_id, size, created) VALUES (?, ?, ?)",
                        (diff_id, size, created))

    def delete_layer(self, diff_id: str) -> None:
        self.db.execute("DELETE FROM layers WHERE diff_id = ?", (diff_id,))

    def lease(self, diff_id: str, expires: float) -> None:
        self.db.execute("INSERT INTO layer_leases (diff_id, expires) VALUES (?, ?)", (diff_id, expires))

    def leased(self, now: float) -> set[str]:
        return {r["diff_id"] for r in self.db.query("SELECT diff_id FROM layer_leases WHERE expires >= ?", (now,))}

    def release(self, diff_ids: list[str], expired_before: float | None = None) -> None:
        """Drops the leases on diff_ids, and every lease expired before expired_before."""
        if expired_before is not None:
            self.db.execute(f"DELETE FROM layer_leases WHERE expires < ? OR diff_id IN ({_marks(diff_ids)})",
                            (expired_before, *diff_ids))
        elif diff_ids:
            self.db.execute(f"DELETE FROM layer_leases WHERE diff_id IN ({_marks(diff_ids)})", tuple(diff_ids))

    # compressed registry blobs ---------------------------------------------------------------------------
    def blob(self, digest: str) -> BlobRow | None:
        r = self.db.query_one("SELECT digest, diff_id, media_type, size FROM registry_blobs WHERE digest = ?",
                              (digest,))
        return BlobRow(r["digest"], r["diff_id"], r["media_type"], r["size"]) if r else None

    def blobs_of_layer(self, diff_id: str) -> list[BlobRow]:
        rows = self.db.query("SELECT digest, diff_id, media_type, size FROM registry_blobs WHERE diff_id = ?",
                             (diff_id,))
        return [BlobRow(r["digest"], r["diff_id"], r["media_type"], r["size"]) for r in rows]

    def blob_sources(self, digest: str, registry: str) -> list[str]:
        rows = self.db.query("SELECT repo FROM registry_blob_sources WHERE digest = ? AND registry = ? "
                             "ORDER BY repo", (digest, registry))
        return [r["repo"] for r in rows]

    def put_blob(self, blob: BlobRow) -> None:
        self.db.execute("INSERT OR REPLACE INTO registry_blobs (digest, diff_id, media_type, size) "
                        "VALUES (?,?,?,?)", (blob.digest, blob.diff_id, blob.media_type, blob.size))

    def add_blob_source(self, digest: str, registry: str, repo: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO registry_blob_sources (digest, registry, repo) VALUES (?,?,?)",
                        (digest, registry, repo))

    def orphan_blobs(self) -> list[BlobRow]:
        """Blobs whose layer is gone."""
        rows = self.db.query("SELECT digest, diff_id, media_type, size FROM registry_blobs WHERE diff_id NOT IN "
                             "(SELECT diff_id FROM layers)")
        return [BlobRow(r["digest"], r["diff_id"], r["media_type"], r["size"]) for r in rows]

    def delete_blob(self, digest: str) -> None:
        self.db.execute("DELETE FROM registry_blobs WHERE digest = ?", (digest,))
        self.db.execute("DELETE FROM registry_blob_sources WHERE digest = ?", (digest,))
