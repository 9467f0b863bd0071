"""Container records in the database and lookups by id, id prefix or name."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from nanovisor.engine.state import State, docker_flags, parse
from nanovisor.errors import Conflict, InvalidParameter, no_such_container
from nanovisor.store.containers import ContainerRow, ContainerTable
from nanovisor.store.db import Database

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
    """Container records by id, id prefix or name; the SQL is store/containers.py's."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = ContainerTable(db)
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
    def _row(row: ContainerRow) -> Container:
        return Container(id=row.id, name=row.name, image_id=row.image_id, created=row.created, spec=row.config,
                         state=row.state)

    def find(self, ref: str) -> Container | None:
        ref = ref.strip()
        if not ref:
            return None
        row = self.table.by_id_or_name(ref, ref.lstrip("/"))
        if row is not None:
            return self._row(row)
        if all(c in "0123456789abcdef" for c in ref):
            rows = self.table.by_id_prefix(ref, limit=2)
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

    def list(self, statuses: list[str] | None = None, image_ids: list[str] | None = None,
             labels: list[tuple[str, str | None]] | None = None,
             id_prefixes: list[str] | None = None) -> list[Container]:
        """Newest first; the arguments narrow the query by index (see ContainerTable.select)."""
        return list(self.iter(statuses, image_ids, labels, id_prefixes))

    def iter(self, statuses: list[str] | None = None, image_ids: list[str] | None = None,
             labels: list[tuple[str, str | None]] | None = None,
             id_prefixes: list[str] | None = None) -> Iterator[Container]:
        """As list(), parsing each record only when reached (a long `ps -a` holds one parsed at a time)."""
        return (self._row(r) for r in self.table.select(statuses, image_ids, labels, id_prefixes))

    def names(self) -> set[str]:
        return self.table.names()

    def count(self) -> int:
        return self.table.count()

    def name_taken(self, name: str) -> bool:
        return self.table.id_named(name) is not None

    def insert(self, c: Container) -> None:
        with self.db.transaction():
            clash = self.table.id_named(c.name)
            if clash:
                raise _name_conflict(c.name, clash)
            self.table.insert(ContainerRow(c.id, c.name, c.image_id, c.created or time.time(), c.spec, c.state),
                              str(c.status))

    def reload(self, c: Container) -> Container | None:
        row = self.table.by_id(c.id)
        return self._row(row) if row else None

    def save_state(self, c: Container) -> None:
        self.table.save_state(c.id, c.state, str(c.status))
        self._notify()

    def save_health(self, cid: str, health: dict) -> None:
        """Health alone, in one statement: a check never overwrites a lifecycle change made meanwhile."""
        self.table.save_health(cid, health)
        self._notify()

    def save_spec(self, c: Container) -> None:
        self.table.save_config(c.id, c.spec)

    def rename(self, c: Container, new_name: str) -> None:
        with self.db.transaction():
            clash = self.table.id_named(new_name, other_than=c.id)
            if clash:
                raise _name_conflict(new_name, clash)
            self.table.rename(c.id, new_name)
        c.name = new_name

    def delete(self, c: Container) -> None:
        self.table.delete(c.id)
        self._notify()


def _name_conflict(name: str, holder: str) -> Conflict:
    return Conflict(f'Conflict. The container name "/{name}" is already in use by container "{holder}". You have '
                    f"to remove (or rename) that container to be able to reuse that name.")
