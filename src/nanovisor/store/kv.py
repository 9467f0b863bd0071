"""The kv table: small engine-wide facts (the engine id, an image's last tag time)."""

from __future__ import annotations

from nanovisor.store.db import Database


class KV:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> str | None:
        row = self.db.query_one("SELECT value FROM kv WHERE key = ?", (key,))
        return row["value"] if row else None

    def put(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    def setdefault(self, key: str, value: str) -> str:
        """The key's value, storing value first if it has none (first writer wins across processes)."""
        self.db.execute("INSERT OR IGNORE INTO kv (key, value) VALUES (?, ?)", (key, value))
        return self.get(key) or value

    def delete(self, key: str) -> None:
        self.db.execute("DELETE FROM kv WHERE key = ?", (key,))
