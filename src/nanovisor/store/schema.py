"""The one schema of the engine database, as an ordered list of migrations.

`PRAGMA user_version` records how many steps a root has had. Opening a root runs the missing steps in one
write transaction (BEGIN IMMEDIATE: the CLI and `serve` opening an old root at once migrate it once), so a
root made by an older nanovisor opens with this one. Steps are append-only: never edit a released step, add
the next one. A root newer than this code is refused rather than written with an older idea of the schema.

Step 1 is the schema as it was before versioning (every table then made with IF NOT EXISTS, in five
modules), so it also adopts an unversioned root (user_version 0) whatever subset of tables it already has.
"""

from __future__ import annotations

import sqlite3

from nanovisor.errors import NanovisorError

V1 = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    created REAL NOT NULL,
    config TEXT NOT NULL,        -- Docker-shaped: {"Config": ..., "HostConfig": ..., "NetworkingConfig": ...}
    state TEXT NOT NULL          -- Docker-shaped State plus private keys (ConmonPid, StartSeq, ...)
);
CREATE TABLE IF NOT EXISTS execs (
    id TEXT PRIMARY KEY,
    container_id TEXT NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,         -- "sha256:<config digest>"
    created REAL NOT NULL,
    config TEXT NOT NULL,        -- the image config JSON (OCI/Docker)
    manifest TEXT,               -- the manifest JSON it came with, if any
    size INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS image_refs (
    ref TEXT PRIMARY KEY,        -- "repo:tag" or "repo@sha256:..."
    image_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS layers (
    diff_id TEXT PRIMARY KEY,    -- "sha256:<uncompressed digest>"
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS layer_leases (   -- layers being used by an image not yet committed
    diff_id TEXT NOT NULL,
    expires REAL NOT NULL
);
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
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    driver TEXT NOT NULL,
    labels TEXT NOT NULL,
    options TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    attributes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS net_endpoints (
    network_id TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ip TEXT NOT NULL,
    spec TEXT NOT NULL,
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, ip)
);
CREATE INDEX IF NOT EXISTS net_endpoints_cid ON net_endpoints(container_id);
CREATE TABLE IF NOT EXISTS net_sandboxes (
    container_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS net_ports (
    proto TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    container_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    PRIMARY KEY (proto, host_ip, host_port)
);
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS build_cache_parent ON build_cache (parent_id);
CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache (image_id);
"""

# Step 2: what per-request queries need so their cost does not grow with the number of containers:
# the container's status as a column (`ps` without -a reads only live ones), labels as rows (label
# filters), and indexes for every lookup by a non-key column.
V2 = """
ALTER TABLE containers ADD COLUMN status TEXT NOT NULL DEFAULT 'created';
UPDATE containers SET status = COALESCE(json_extract(state, '$.Status'), 'created');
CREATE INDEX containers_status ON containers (status, created);
CREATE INDEX containers_image ON containers (image_id);
CREATE TABLE container_labels (
    container_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (container_id, key)
);
CREATE INDEX container_labels_kv ON container_labels (key, value);
INSERT INTO container_labels (container_id, key, value)
    SELECT c.id, j.key, COALESCE(CAST(j.value AS TEXT), '')
    FROM containers c, json_each(c.config, '$.Config.Labels') j WHERE j.key IS NOT NULL;
CREATE INDEX execs_container ON execs (container_id);
CREATE INDEX events_actor ON events (actor_id, action);
CREATE INDEX image_refs_image ON image_refs (image_id);
CREATE INDEX layer_leases_diff ON layer_leases (diff_id);
CREATE INDEX net_ports_cid ON net_ports (container_id);
"""

MIGRATIONS: list[str] = [V1, V2]
VERSION = len(MIGRATIONS)


class SchemaTooNew(NanovisorError):
    """The root was written by a newer nanovisor."""


def _statements(script: str) -> list[str]:
    """A migration script split into statements (none of ours has a ';' inside a literal or a comment)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def version_of(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> int:
    """Brings the database to VERSION; returns the version it had. conn is in autocommit mode."""
    current = version_of(conn)
    if current == VERSION:
        return current
    if current > VERSION:
        raise SchemaTooNew(f"the data root's database has schema version {current}; this nanovisor knows up "
                           f"to {VERSION}: use a newer nanovisor")
    conn.execute("BEGIN IMMEDIATE")
    try:
        start = version_of(conn)  # another process may have migrated while we waited for the lock
        for script in MIGRATIONS[start:]:
            for statement in _statements(script):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return current
