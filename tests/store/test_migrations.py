"""A data root made before the schema was versioned (main as of issue 8: no user_version, tables made with
IF NOT EXISTS in five modules) opens with this nanovisor: its containers, images, volumes, events and
networks are all there and work. OLD_SCHEMA is a verbatim copy of that DDL; never edit it."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from nvtest import IMAGE, cleanup_root, run_cli

from nanovisor.store import schema
from nanovisor.store.db import Database

OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    created REAL NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS execs (
    id TEXT PRIMARY KEY,
    container_id TEXT NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    config TEXT NOT NULL,
    manifest TEXT,
    size INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS image_refs (
    ref TEXT PRIMARY KEY,
    image_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS layers (
    diff_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    created REAL NOT NULL
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
CREATE TABLE IF NOT EXISTS layer_leases (
    diff_id TEXT NOT NULL,
    expires REAL NOT NULL
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
CREATE TABLE IF NOT EXISTS registry_blobs (
    digest TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS registry_blobs_diff_id ON registry_blobs (diff_id);
CREATE TABLE IF NOT EXISTS registry_blob_sources (
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    repo TEXT NOT NULL,
    PRIMARY KEY (digest, registry, repo)
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

OLD_COLUMNS = {  # what the old tables hold, to copy rows of a root made now into an old-schema database
    "containers": "id, name, image_id, created, config, state", "execs": "*", "images": "*",
    "image_refs": "*", "layers": "*", "volumes": "*", "events": "*", "kv": "*",
}


def _old_root(made_now: Path) -> Path:
    """A copy of made_now whose database has the pre-versioning schema and the same rows."""
    old = Path(tempfile.mkdtemp(prefix="nv-test-oldroot-"))
    shutil.copytree(made_now, old, symlinks=True, dirs_exist_ok=True)
    for name in ("nanovisor.db", "nanovisor.db-wal", "nanovisor.db-shm"):
        (old / name).unlink(missing_ok=True)
    conn = sqlite3.connect(old / "nanovisor.db", isolation_level=None)
    conn.executescript(OLD_SCHEMA)
    conn.execute("ATTACH DATABASE ? AS now", (f"file:{made_now / 'nanovisor.db'}?mode=ro",))
    for table, cols in OLD_COLUMNS.items():
        conn.execute(f"INSERT INTO main.{table} SELECT {cols} FROM now.{table}")
    conn.execute("INSERT INTO networks (id, name, created, spec) VALUES ('n1', 'oldnet', 1.0, ?)",
                 (json.dumps({"Driver": "null"}),))
    conn.execute("DETACH DATABASE now")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()
    return old


@pytest.fixture
def old_root(fresh_root):
    run_cli(fresh_root, "nano", "build", "busybox", check=True, timeout=300)
    run_cli(fresh_root, "create", "--name", "old1", "--label", "tier=web", IMAGE, "echo", "from-the-old-root",
            check=True)
    run_cli(fresh_root, "create", "--name", "old2", IMAGE, "true", check=True)
    run_cli(fresh_root, "volume", "create", "oldvol", check=True)
    old = _old_root(fresh_root)
    yield old
    cleanup_root(old)


def test_a_root_made_before_versioning_opens_with_its_data_working(old_root):
    ps = run_cli(old_root, "ps", "-a", "--format", "{{.Names}} {{.Status}}", check=True).stdout.split("\n")
    assert "old1 Created" in ps and "old2 Created" in ps
    labelled = run_cli(old_root, "ps", "-a", "--filter", "label=tier=web", "--format", "{{.Names}}",
                       check=True).stdout.split()
    assert labelled == ["old1"]  # label rows were made from the old containers' configs
    inspected = json.loads(run_cli(old_root, "inspect", "old1", check=True).stdout)[0]
    assert inspected["Config"]["Labels"]["tier"] == "web"
    assert run_cli(old_root, "start", "-a", "old1", check=True).stdout.strip() == "from-the-old-root"
    assert run_cli(old_root, "ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}",
                   check=True).stdout.split() == ["old1"]
    assert run_cli(old_root, "run", "--rm", IMAGE, "echo", "image-ok", check=True).stdout.strip() == "image-ok"
    assert "oldvol" in run_cli(old_root, "volume", "ls", "-q", check=True).stdout.split()
    run_cli(old_root, "rm", "old1", "old2", check=True)
    assert run_cli(old_root, "ps", "-aq", check=True).stdout.strip() == ""
    db = Database(old_root / "nanovisor.db")
    assert schema.version_of(db._conn()) == schema.VERSION
    from nanovisor.store.networks import NetStore

    assert "oldnet" in [n.name for n in NetStore(db).networks()]


def test_migrating_is_done_once_and_a_newer_root_is_refused(tmp_path):
    path = tmp_path / "nanovisor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(OLD_SCHEMA)
    conn.execute("INSERT INTO containers VALUES ('abc', 'n', 'sha256:x', 1.0, ?, ?)",
                 (json.dumps({"Config": {"Labels": None}}), json.dumps({"Status": "exited"})))
    assert schema.migrate(conn) == 0
    assert schema.migrate(conn) == schema.VERSION  # nothing left to do
    assert conn.execute("SELECT status FROM containers").fetchone()[0] == "exited"
    assert conn.execute("SELECT COUNT(*) FROM container_labels").fetchone()[0] == 0
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    conn.close()
    with pytest.raises(schema.SchemaTooNew, match="use a newer nanovisor"):
        Database(path)
