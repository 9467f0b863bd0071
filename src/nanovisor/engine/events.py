"""The event log: every engine process (CLI or daemon) appends to one table; /events reads and follows it,
so events from the embedded CLI show up in `docker events` against the daemon too."""

from __future__ import annotations

import time
from collections.abc import Iterator

from nanovisor.store.db import Database
from nanovisor.store.events import EventRow, EventTable

KEEP = 10_000  # events kept; older ones are trimmed now and then


class EventLog:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = EventTable(db)

    def emit(self, type_: str, action: str, actor_id: str, attributes: dict | None = None) -> None:
        now = time.time_ns()
        self.table.append(now, type_, action, actor_id, attributes or {})
        if now % 97 == 0:
            self.table.trim(KEEP)

    @staticmethod
    def _message(row: EventRow) -> dict:
        attrs = row.attributes
        ns = row.time_nano
        msg = {"Type": row.type, "Action": row.action,
               "Actor": {"ID": row.actor_id, "Attributes": attrs}, "scope": "local",
               "time": ns // 1_000_000_000, "timeNano": ns}
        if row.type == "container":  # the pre-1.22 fields, still sent by dockerd and read by some clients
            msg.update({"status": row.action, "id": row.actor_id, "from": attrs.get("image", "")})
        return msg

    def last_exit_code(self, container_id: str, since_ns: int = 0) -> int | None:
        """The exit code in a container's last `die` event (outlives the container's record), or with
        since_ns in its first one at or after that time."""
        row = self.table.first_of_since(container_id, "die", since_ns) if since_ns else \
            self.table.last_of(container_id, "die")
        return None if row is None else int(row.attributes.get("exitCode", 0))

    def read(self, since: float | None = None, until: float | None = None,
             match=lambda msg: True, poll: float = 0.1) -> Iterator[dict]:
        """Past events from since, then (without until) new ones as they come, until until."""
        last = self.table.last_seq()
        seq = 0 if since is not None else last
        since_ns = int((since or 0) * 1e9)
        while True:
            rows = self.table.after(seq)
            for row in rows:
                seq = row.seq
                if row.time_nano < since_ns:
                    continue
                if until is not None and row.time_nano > until * 1e9:
                    return
                msg = self._message(row)
                if match(msg):
                    yield msg
            if until is not None and time.time() >= until and not rows:
                return
            if not rows:
                time.sleep(poll)
