"""The events table: an append-only log every engine process writes, read in sequence order."""

from __future__ import annotations

from dataclasses import dataclass

from nanovisor.store.db import Database, dumps, loads


@dataclass
class EventRow:
    seq: int
    time_nano: int
    type: str
    action: str
    actor_id: str
    attributes: dict


def _row(r) -> EventRow:
    return EventRow(r["seq"], r["time_nano"], r["type"], r["action"], r["actor_id"], loads(r["attributes"]) or {})


class EventTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, time_nano: int, type_: str, action: str, actor_id: str, attributes: dict) -> None:
        self.db.execute("INSERT INTO events (time_nano, type, action, actor_id, attributes) VALUES (?,?,?,?,?)",
                        (time_nano, type_, action, actor_id, dumps(attributes)))

    def trim(self, keep: int) -> None:
        """Drops all but the newest `keep` events."""
        self.db.execute("DELETE FROM events WHERE seq < (SELECT MAX(seq) FROM events) - ?", (keep,))

    def last_seq(self) -> int:
        return self.db.query_one("SELECT COALESCE(MAX(seq), 0) AS m FROM events")["m"]

    def after(self, seq: int, limit: int = 500) -> list[EventRow]:
        return [_row(r) for r in self.db.query("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                               (seq, limit))]

    def last_of(self, actor_id: str, action: str) -> EventRow | None:
        """The newest `action` event of an actor (e.g. a removed container's last `die`)."""
        row = self.db.query_one("SELECT * FROM events WHERE actor_id = ? AND action = ? ORDER BY seq DESC LIMIT 1",
                                (actor_id, action))
        return _row(row) if row else None

    def first_of_since(self, actor_id: str, action: str, since_ns: int) -> EventRow | None:
        row = self.db.query_one("SELECT * FROM events WHERE actor_id = ? AND action = ? AND time_nano >= ? "
                                "ORDER BY seq LIMIT 1", (actor_id, action, since_ns))
        return _row(row) if row else None
