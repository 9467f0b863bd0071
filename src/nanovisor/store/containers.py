"""The containers table (and its label rows): every container query the engine makes, each one indexed.

Rows come back as ContainerRow (JSON already parsed); the engine's ContainerStore turns them into its
Container type. `status` is a column copy of state["Status"] kept by every state write, so `ps` without -a
reads only live containers; labels are rows so a label filter is an index lookup. Both are written in the
same statement/transaction as the JSON they copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from nanovisor.store.db import Database, dumps, loads

_COLUMNS = "id, name, image_id, created, config, state"


@dataclass
class ContainerRow:
    id: str
    name: str
    image_id: str
    created: float
    config: dict   # the container's spec: Config, HostConfig, NetworkingConfig, MountPoints, ...
    state: dict


def _row(r) -> ContainerRow:
    return ContainerRow(r["id"], r["name"], r["image_id"], r["created"], loads(r["config"]), loads(r["state"]))


def _prefix_range(prefix: str) -> tuple[str, str]:
    """An id prefix as an index range (LIKE would scan: SQLite's LIKE is case-insensitive)."""
    return prefix, prefix + "g"  # ids are lower-case hex: "g" sorts after every hex digit


class ContainerTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    def by_id_or_name(self, cid: str, name: str) -> ContainerRow | None:
        row = self.db.query_one(f"SELECT {_COLUMNS} FROM containers WHERE id = ? UNION ALL "
                                f"SELECT {_COLUMNS} FROM containers WHERE name = ? LIMIT 1", (cid, name))
        return _row(row) if row else None

    def by_id(self, cid: str) -> ContainerRow | None:
        row = self.db.query_one(f"SELECT {_COLUMNS} FROM containers WHERE id = ?", (cid,))
        return _row(row) if row else None

    def by_id_prefix(self, prefix: str, limit: int = 2) -> list[ContainerRow]:
        lo, hi = _prefix_range(prefix)
        rows = self.db.query(f"SELECT {_COLUMNS} FROM containers WHERE id >= ? AND id < ? LIMIT ?", (lo, hi, limit))
        return [_row(r) for r in rows]

    def name_of(self, cid: str) -> str | None:
        row = self.db.query_one("SELECT name FROM containers WHERE id = ?", (cid,))
        return row["name"] if row else None

    def id_named(self, name: str, other_than: str = "") -> str | None:
        """The id of the container called name (ignoring other_than), if any."""
        row = self.db.query_one("SELECT id FROM containers WHERE name = ? AND id != ?", (name, other_than))
        return row["id"] if row else None

    def containing(self, text: str) -> list[ContainerRow]:
        """Containers whose stored record contains text: a cheap pre-filter (legacy links name their child
        as '"/child:/parent/alias"'), so the engine parses only the few that may match."""
        rows = self.db.query(f"SELECT {_COLUMNS} FROM containers WHERE instr(config, ?) > 0", (text,))
        return [_row(r) for r in rows]

    def count(self) -> int:
        return self.db.query_one("SELECT COUNT(*) AS n FROM containers")["n"]

    def names(self) -> set[str]:
        return {r["name"] for r in self.db.query("SELECT name FROM containers")}

    def select(self, statuses: list[str] | None = None, image_ids: list[str] | None = None,
               labels: list[tuple[str, str | None]] | None = None,
               id_prefixes: list[str] | None = None) -> Iterator[ContainerRow]:
        """Newest first; each argument narrows by an index (None: no condition). labels: (key, value or
        None for any value), all must match; id_prefixes: any may match."""
        where, args = [], []
        if statuses is not None:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if image_ids is not None:
            where.append(f"image_id IN ({','.join('?' * len(image_ids))})")
            args += image_ids
        if id_prefixes is not None:
            ranges = [_prefix_range(p) for p in id_prefixes]
            where.append("(" + (" OR ".join("(id >= ? AND id < ?)" for _ in ranges) or "0") + ")")
            args += [x for r in ranges for x in r]
        for key, value in labels or []:
            if value is None:
                where.append("id IN (SELECT container_id FROM container_labels WHERE key = ?)")
                args.append(key)
            else:
                where.append("id IN (SELECT container_id FROM container_labels WHERE key = ? AND value = ?)")
                args += [key, value]
        sql = f"SELECT {_COLUMNS} FROM containers"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.query(sql + " ORDER BY created DESC", tuple(args))
        return (_row(r) for r in rows)  # parsed one at a time: a long listing never holds every config parsed

    def using_image(self, image_id: str) -> list[tuple[str, bool]]:
        """(id, running) of the containers made from image_id, oldest first."""
        rows = self.db.query("SELECT id, state FROM containers WHERE image_id = ? ORDER BY created", (image_id,))
        return [(r["id"], bool((loads(r["state"]) or {}).get("Running"))) for r in rows]

    def insert(self, row: ContainerRow, status: str) -> None:
        """Inside the caller's transaction when it checked the name first."""
        with self.db.transaction():
            self.db.execute("INSERT INTO containers (id, name, image_id, created, config, state, status) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", (row.id, row.name, row.image_id, row.created,
                                                             dumps(row.config), dumps(row.state), status))
            labels = (row.config.get("Config") or {}).get("Labels") or {}
            self.db.executemany("INSERT INTO container_labels (container_id, key, value) VALUES (?, ?, ?)",
                                [(row.id, k, "" if v is None else str(v)) for k, v in labels.items()])

    def save_state(self, cid: str, state: dict, status: str) -> None:
        self.db.execute("UPDATE containers SET state = ?, status = ? WHERE id = ?", (dumps(state), status, cid))

    def save_health(self, cid: str, health: dict) -> None:
        """state.Health alone, in one statement: a check never overwrites a lifecycle change made meanwhile."""
        self.db.execute("UPDATE containers SET state = json_set(state, '$.Health', json(?)) WHERE id = ?",
                        (dumps(health), cid))

    def save_config(self, cid: str, config: dict) -> None:
        self.db.execute("UPDATE containers SET config = ? WHERE id = ?", (dumps(config), cid))

    def rename(self, cid: str, name: str) -> None:
        self.db.execute("UPDATE containers SET name = ? WHERE id = ?", (name, cid))

    def delete(self, cid: str) -> None:
        """The container with its labels and exec records."""
        with self.db.transaction():
            self.db.execute("DELETE FROM containers WHERE id = ?", (cid,))
            self.db.execute("DELETE FROM container_labels WHERE container_id = ?", (cid,))
            self.db.execute("DELETE FROM execs WHERE container_id = ?", (cid,))
