"""Container records in the database and lookups by id, id prefix or name."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from nanovisor.engine.state import State, docker_flags, parse
from nanovisor.errors import Conflict, InvalidParameter, no_such_container
from nanovisor.store.db import Database, dumps, loads

PRIVATE = "_"  # state keys starting with this are ours, not Docker's, and never leave the engine


def initial_state() -> dict:
    return {**docker_flags(State.CREATED), "OOMKilled": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": 0.0, "FinishedAt": 0.0,
            "_MonitorPid": 0, "_StartSeq": 0, "_ReapedSeq": 0, "_RestartCount": 0, "_ManualStop": False}


@dataclass
class Container:
    id: str
    name: str
    image_id: str
    created: float
    spec: dict                    # Config, HostConfig, NetworkingConfig, ImageRef, Runtime, ...
    state: dict = field(default_factory=initial_state)

    @property
    def config(self) -> dict:
        return self.spec["Config"]

    @property
    def host_config(self) -> dict:
        return self.spec["HostConfig"]

    @property
    def runtime(self) -> str:
        return self.spec["Runtime"]

    @property
    def status(self) -> State:
        """The one stored lifecycle state (engine/state.py); every root ever written has its `Status`."""
        return parse(self.state.get("Status"))

    def set_status(self, status: State) -> None:
        """The only writer of the state: `Status` and Docker's booleans derived from it, kept in the record
        too so that readers of the raw rows (images in use) and older versions read them right."""
        self.state.update(docker_flags(status))

    @property
    def running(self) -> bool:
        """It has a process (running or paused). Docker's State.Running also counts restarting."""
        return self.status in (State.RUNNING, State.PAUSED)

    @property
    def paused(self) -> bool:
        return self.status is State.PAUSED


class ContainerStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # notified on every change this process makes, so in-process waiters need not poll
        self.changed = threading.Condition()

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_change(self, timeout: float) -> None:
        """Sleeps until this process changes a container, or timeout (changes by other processes)."""
        with self.changed:
            self.changed.wait(timeout)

    @staticmethod
    def _row(row) -> Container:
        return Container(id=row["id"], name=row["name"], image_id=row["image_id"], created=row["created"],
                         spec=loads(row["config"]), state=loads(row["state"]))

    def find(self, ref: str) -> Container | None:
        ref = ref.strip()
        if not ref:
            return None
        row = self.db.query_one("SELECT * FROM containers WHERE id = ? OR name = ?", (ref, ref.lstrip("/")))
        if row is not None:
            return self._row(row)
        if all(c in "0123456789abcdef" for c in ref):
            rows = self.db.query("SELECT * FROM containers WHERE id LIKE ? LIMIT 2", (ref + "%",))
            if len(rows) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
            if rows:
                return self._row(rows[0])
        return None

    def get(self, ref: str) -> Container:
        container = self.find(ref)
        if container is None:
            raise no_such_container(ref)
        return container

    def list(self) -> list[Container]:
        return [self._row(r) for r in self.db.query("SELECT * FROM containers ORDER BY created DESC")]

    def names(self) -> set[str]:
        return {r["name"] for r in self.db.query("SELECT name FROM containers")}

    def insert(self, c: Container) -> None:
        with self.db.transaction() as conn:
            clash = conn.execute("SELECT id FROM containers WHERE name = ?", (c.name,)).fetchone()
            if clash:
                raise Conflict(f'Conflict. The container name "/{c.name}" is already in use by container '
                               f'"{clash["id"]}". You have to remove (or rename) that container to be able '
                               f"to reuse that name.")
            conn.execute("INSERT INTO containers (id, name, image_id, created, config, state) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (c.id, c.name, c.image_id, c.created or time.time(), dumps(c.spec), dumps(c.state)))

    def reload(self, c: Container) -> Container | None:
        row = self.db.query_one("SELECT * FROM containers WHERE id = ?", (c.id,))
        return self._row(row) if row else None

    def save_state(self, c: Container) -> None:
        self.db.execute("UPDATE containers SET state = ? WHERE id = ?", (dumps(c.state), c.id))
        self._notify()

    def save_health(self, cid: str, health: dict) -> None:
        """Health alone, in one statement: a check never overwrites a lifecycle change made meanwhile."""
        self.db.execute("UPDATE containers SET state = json_set(state, '$.Health', json(?)) WHERE id = ?",
                        (dumps(health), cid))
        self._notify()

    def save_spec(self, c: Container) -> None:
        self.db.execute("UPDATE containers SET config = ? WHERE id = ?", (dumps(c.spec), c.id))

    def rename(self, c: Container, new_name: str) -> None:
        with self.db.transaction() as conn:
            clash = conn.execute("SELECT id FROM containers WHERE name = ? AND id != ?",
                                 (new_name, c.id)).fetchone()
            if clash:
                raise Conflict(f'Conflict. The container name "/{new_name}" is already in use by container '
                               f'"{clash["id"]}". You have to remove (or rename) that container to be able '
                               f"to reuse that name.")
            conn.execute("UPDATE containers SET name = ? WHERE id = ?", (new_name, c.id))
        c.name = new_name

    def delete(self, c: Container) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM containers WHERE id = ?", (c.id,))
            conn.execute("DELETE FROM execs WHERE container_id = ?", (c.id,))
        self._notify()
