"""A path -> int map that stays small in memory whatever the archive: what unpacking must remember per
member (directory mtimes to set last, the tar-split record of each data file) moves to a scratch SQLite file
once it passes a few tens of thousands of entries, so a small hostile archive listing millions of
directories costs disk, not gigabytes of RAM."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator

IN_MEMORY = 50_000   # entries kept in a dict (~10 MB) before spilling


def _key(path: str) -> bytes:
    """Sorts like path.split("/") compares: "/" becomes the lowest byte, so a directory's descendants
    directly follow it (and precede it in descending order)."""
    return path.encode("utf-8", "surrogateescape").replace(b"/", b"\0")


def _path(key: bytes) -> str:
    return key.replace(b"\0", b"/").decode("utf-8", "surrogateescape")


class SpillMap:
    """Last value wins, as in a dict; `descending()` yields (path, value) in descending path order."""

    def __init__(self, scratch_dir: str | os.PathLike | None = None, limit: int | None = None) -> None:
        self._mem: dict[str, int] = {}
        self._db: sqlite3.Connection | None = None
        self._dir = scratch_dir
        self._limit = IN_MEMORY if limit is None else limit

    def __setitem__(self, path: str, value: int) -> None:
        if self._db is None:
            self._mem[path] = value
            if len(self._mem) > self._limit:
                self._spill()
            return
        self._db.execute("INSERT OR REPLACE INTO m (k, v) VALUES (?, ?)", (_key(path), value))

    def get(self, path: str) -> int | None:
        if self._db is None:
            return self._mem.get(path)
        row = self._db.execute("SELECT v FROM m WHERE k=?", (_key(path),)).fetchone()
        return row[0] if row else None

    def __contains__(self, path: str) -> bool:
        return self.get(path) is not None

    def __len__(self) -> int:
        if self._db is None:
            return len(self._mem)
        return self._db.execute("SELECT count(*) FROM m").fetchone()[0]

    def _spill(self) -> None:
        fd, name = tempfile.mkstemp(prefix=".spill-", suffix=".db", dir=self._dir)
        os.close(fd)
        db = sqlite3.connect(name, isolation_level=None)
        os.unlink(name)  # the open connection keeps it; nothing to clean up after a crash
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-4096")  # 4 MB
        db.execute("CREATE TABLE m (k BLOB PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID")
        db.execute("BEGIN")  # one transaction for the whole life of the map: no commit per entry
        db.executemany("INSERT INTO m (k, v) VALUES (?, ?)", ((_key(p), v) for p, v in self._mem.items()))
        self._mem = {}
        self._db = db

    def descending(self) -> Iterator[tuple[str, int]]:
        if self._db is None:
            for key in sorted((_key(p) for p in self._mem), reverse=True):
                path = _path(key)
                yield path, self._mem[path]
            return
        for key, value in self._db.execute("SELECT k, v FROM m ORDER BY k DESC"):
            yield _path(key), value

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._mem = {}
