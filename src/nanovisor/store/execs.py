"""The execs table: one row per exec session (its config and state as JSON), indexed by container."""

from __future__ import annotations

from dataclasses import dataclass

from nanovisor.store.db import Database, dumps, loads


@dataclass
class ExecRow:
    id: str
    container_id: str
    config: dict
    state: dict


def _row(r) -> ExecRow:
    return ExecRow(r["id"], r["container_id"], loads(r["config"]), loads(r["state"]))


class ExecTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, exec_id: str) -> ExecRow | None:
        row = self.db.query_one("SELECT * FROM execs WHERE id = ?", (exec_id,))
        return _row(row) if row else None

    def by_prefix(self, prefix: str, limit: int = 2) -> list[ExecRow]:
        rows = self.db.query("SELECT * FROM execs WHERE id >= ? AND id < ? LIMIT ?", (prefix, prefix + "g", limit))
        return [_row(r) for r in rows]

    def ids_of(self, container_id: str) -> list[str]:
        return [r["id"] for r in self.db.query("SELECT id FROM execs WHERE container_id = ?", (container_id,))]

    def insert(self, row: ExecRow) -> None:
        self.db.execute("INSERT INTO execs (id, container_id, config, state) VALUES (?,?,?,?)",
                        (row.id, row.container_id, dumps(row.config), dumps(row.state)))

    def save_state(self, exec_id: str, state: dict) -> None:
        self.db.execute("UPDATE execs SET state = ? WHERE id = ?", (dumps(state), exec_id))
