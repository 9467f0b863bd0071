"""Per-container locks shared by every engine process on a root (flock on a file under /run)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ContainerLocks:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._threads: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()
        self._held = threading.local()  # cid → depth, for this thread

    @contextmanager
    def hold(self, cid: str) -> Iterator[None]:
        """Serialises lifecycle changes of one container across threads and processes. Re-entrant within
        a thread (flock is per open file, so only the outermost hold takes it)."""
        held = self._held.__dict__.setdefault("depth", {})
        if held.get(cid):
            held[cid] += 1
            try:
                yield
            finally:
                held[cid] -= 1
            return
        with self._guard:
            tlock = self._threads.setdefault(cid, threading.RLock())
        with tlock:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / cid, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held[cid] = 1
                try:
                    yield
                finally:
                    held.pop(cid, None)
            finally:
                os.close(fd)

    def forget(self, cid: str) -> None:
        with self._guard:
            self._threads.pop(cid, None)
        try:
            os.unlink(self.directory / cid)
        except FileNotFoundError:
            pass
