"""`docker logs` over a container's log: which lines, from when, with or without timestamps.

The file's format is the driver's: json-file and local are read by runtime/logfiles.py (across rotations),
k8s-file by runtime/monitor.py (conmon's own format); partial records are joined either way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from nanovisor.engine.timefmt import parse_rfc3339
from nanovisor.runtime.logfiles import json_records
from nanovisor.runtime.monitor import join_partial, log_lines


class LogReader:
    def __init__(self, path: Path, driver: str = "json-file") -> None:
        self.path = path
        self.driver = driver

    def lines(self, follow: Callable[[], bool] | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        """(stream, docker timestamp, line-with-newline) with partial records joined."""
        if self.driver == "k8s-file":
            return log_lines(self.path, follow)
        return join_partial(json_records(self.path, follow))

    def read(self, stdout: bool = True, stderr: bool = True, follow: Callable[[], bool] | None = None,
             since: float = 0, until: float = 0, timestamps: bool = False,
             tail: str | int = "all") -> Iterator[tuple[int, bytes]]:
        want = {1: stdout, 2: stderr}
        try:  # moby: anything but a number means all lines
            n_tail = -1 if str(tail) in ("all", "", "-1") else max(int(str(tail).strip()), -1)
        except ValueError:
            n_tail = -1

        def selected(entries) -> Iterator[tuple[int, bytes, bytes]]:
            for stream, ts, line in entries:
                if not want.get(stream):
                    continue
                if since or until:
                    t = parse_rfc3339(ts.decode())
                    if since and t < since:
                        continue
                    if until and t > until:
                        return
                yield stream, ts, line

        if n_tail >= 0:
            history = deque(selected(self.lines(None)), maxlen=n_tail) if n_tail else deque()
            for stream, ts, line in history:
                yield stream, (ts + b" " + line) if timestamps else line
            if follow is None:
                return
            skip = sum(1 for _ in self.lines(None))  # continue after what exists now
            source = self.lines(follow)
            for _ in range(skip):
                next(source, None)
            entries = selected(source)
        else:
            entries = selected(self.lines(follow))
        for stream, ts, line in entries:
            yield stream, (ts + b" " + line) if timestamps else line
