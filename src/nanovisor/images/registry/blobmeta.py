"""What we know about compressed layer blobs: which diff_id a registry blob unpacks to and which
repositories hold it. Pull records this (so the next pull skips what it has and a push re-uses the exact
digests it pulled) and push records it (so the next push HEADs or mounts instead of uploading).

The compressed blobs themselves live in the BlobStore; `collect_garbage` drops the ones whose layer is gone."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from nanovisor.images.store import LEASE_SECONDS, ImageStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_blobs (     -- compressed layer blobs we hold or have seen
    digest TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS registry_blobs_diff_id ON registry_blobs (diff_id);
CREATE TABLE IF NOT EXISTS registry_blob_sources (  -- where a blob is known to exist
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    repo TEXT NOT NULL,
    PRIMARY KEY (digest, registry, repo)
);
"""


@dataclass
class BlobInfo:
    digest: str
    diff_id: str
    media_type: str
    size: int


def ensure(store: ImageStore) -> None:
    for stmt in SCHEMA.split(";"):
        if stmt.strip():
            store.db.execute(stmt)


def lookup(store: ImageStore, digest: str) -> BlobInfo | None:
    row = store.db.query_one("SELECT digest, diff_id, media_type, size FROM registry_blobs WHERE digest=?",
                             (digest,))
    return BlobInfo(row["digest"], row["diff_id"], row["media_type"], row["size"]) if row else None


def for_diff_id(store: ImageStore, diff_id: str) -> list[BlobInfo]:
    """Compressed blobs of a layer that are present in the BlobStore."""
    rows = store.db.query("SELECT digest, diff_id, media_type, size FROM registry_blobs WHERE diff_id=?",
                          (diff_id,))
    return [BlobInfo(r["digest"], r["diff_id"], r["media_type"], r["size"]) for r in rows
            if store.blobs.has(r["digest"])]


def sources(store: ImageStore, digest: str, registry: str) -> list[str]:
    rows = store.db.query("SELECT repo FROM registry_blob_sources WHERE digest=? AND registry=? ORDER BY repo",
                          (digest, registry))
    return [r["repo"] for r in rows]


def record(store: ImageStore, info: BlobInfo, registry: str | None = None, repo: str | None = None) -> None:
    with store.db.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO registry_blobs (digest, diff_id, media_type, size) VALUES (?,?,?,?)",
                     (info.digest, info.diff_id, info.media_type, info.size))
        if registry and repo:
            conn.execute("INSERT OR IGNORE INTO registry_blob_sources (digest, registry, repo) VALUES (?,?,?)",
                         (info.digest, registry, repo))


def record_source(store: ImageStore, digest: str, registry: str, repo: str) -> None:
    store.db.execute("INSERT OR IGNORE INTO registry_blob_sources (digest, registry, repo) VALUES (?,?,?)",
                     (digest, registry, repo))


def commit_file(store: ImageStore, path: Path, digest: str) -> None:
    """Moves a verified file into the BlobStore under its digest (same filesystem: one rename)."""
    dest = store.blobs.path(digest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o644)
    os.rename(path, dest)
    fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lease(store: ImageStore, diff_id: str) -> None:
    """Keeps a present layer from garbage collection until the image that uses it is created (the pull
    found it already there). Uses ImageStore's lease table; ImageStore.create_image_* clears it."""
    store.db.execute("INSERT INTO layer_leases (diff_id, expires) VALUES (?, ?)",
                     (diff_id, time.time() + LEASE_SECONDS))


def collect_garbage(store: ImageStore) -> int:
    """Deletes compressed blobs whose layer is gone; returns bytes freed. Call after
    ImageStore.collect_garbage (the lead wires this in)."""
    freed = 0
    with store.db.transaction() as conn:
        rows = conn.execute("SELECT digest, size FROM registry_blobs WHERE diff_id NOT IN "
                            "(SELECT diff_id FROM layers)").fetchall()
        for r in rows:
            conn.execute("DELETE FROM registry_blobs WHERE digest=?", (r["digest"],))
            conn.execute("DELETE FROM registry_blob_sources WHERE digest=?", (r["digest"],))
    for r in rows:
        if store.blobs.has(r["digest"]):
            freed += r["size"]
            store.blobs.delete(r["digest"])
    return freed
