"""The event log: every engine process (CLI or daemon) appends to one table; /events reads and follows it,
so events from the embedded CLI show up in `docker events` against the daemon too."""

from __future__ import annotations

import time
from collections.abc import Iterator

from nanovisor.store.db import Database, dumps, loads

KEEP = 10_000  # events kept; older ones are trimmed now and then


class EventLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def emit(self, type_: str, action: str, actor_id: str, attributes: dict | None = None) -> None:
        now = time.time_ns()
        self.db.execute("INSERT INTO events (time_nano, type, action, actor_id, attributes) VALUES (?,?,?,?,?)",
                        (now, type_, action, actor_id, dumps(attributes or {})))
        if now % 97 == 0:
            self.db.execute("DELETE FROM events WHERE seq < (SELECT MAX(seq) FROM events) - ?", (KEEP,))

    @staticmethod
    def _message(row) -> dict:
        attrs = loads(row["attributes"])
        ns = row["time_nano"]
        msg = {"Type": row["type"], "Action": row["action"],
               "Actor": {"ID": row["actor_id"], "Attributes": attrs}, "scope": "local",
               "time": ns // 1_000_000_000, "timeNano": ns}
        if row["type"] == "container":  # the pre-1.22 fields, still sent by dockerd and read by some clients
            msg.update({"status": row["action"], "id": row["actor_id"], "from": attrs.get("image", "")})
        return msg

    def read(self, since: float | None = None, until: float | None = None,
             match=lambda msg: True, poll: float = 0.1) -> Iterator[dict]:
        """Past events from since, then (without until) new ones as they come, until until."""
        last = self.db.query_one("SELECT COALESCE(MAX(seq), 0) AS m FROM events")["m"]
        seq = 0 if since is not None else last
        since_ns = int((since or 0) * 1e9)
        while True:
            rows = self.db.query("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT 500", (seq,))
            for row in rows:
                seq = row["seq"]
                if row["time_nano"] < since_ns:
                    continue
                if until is not None and row["time_nano"] > until * 1e9:
                    return
                msg = self._message(row)
                if match(msg):
                    yield msg
            if until is not None and time.time() >= until and not rows:
                return
            if not rows:
                time.sleep(poll)
