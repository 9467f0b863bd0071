"""Reading container logs written by conmon in the k8s-file format.

Each record is `TIMESTAMP STREAM TAG CONTENT\\n` where TAG is F (full line) or P (partial: the line goes on in
the next record). We reassemble partial records so a long line comes out whole, as `docker logs` shows it.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from nanovisor.engine.timefmt import parse_rfc3339

STREAMS = {b"stdout": 1, b"stderr": 2}


def _parse(record: bytes) -> tuple[bytes, int, bool, bytes] | None:
    try:
        ts, stream, tag, content = record.split(b" ", 3)
    except ValueError:
        parts = record.split(b" ")
        if len(parts) == 3:  # an empty content field
            ts, stream, tag = parts
            content = b""
        else:
            return None
    return ts, STREAMS.get(stream, 1), tag == b"P", content


def _docker_ts(ts: bytes) -> bytes:
    """conmon writes 2024-01-01T00:00:00.123456789+00:00; docker shows 2024-01-01T00:00:00.123456789Z."""
    text = ts.decode()
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text.encode()


class LogReader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _records(self, follow: Callable[[], bool] | None) -> Iterator[tuple[bytes, int, bool, bytes]]:
        """Raw records; with follow, waits for more while follow() is true and the file may grow.

        The file stays open while it is read: a client that reads a stream after removing the container
        (docker-py's `containers.run(remove=True)` joins the log stream after its remove) still gets every line.
        It is opened again only when --log-size-max rotated or truncated it."""
        f = None
        buf = b""
        try:
            while True:
                if f is not None and self._rotated(f):
                    f.close()
                    f = None
                if f is None:
                    try:
                        f = open(self.path, "rb")  # held across yields; closed in finally
                    except FileNotFoundError:
                        f = None
                chunk = f.read() if f is not None else b""
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        parsed = _parse(line)
                        if parsed:
                            yield parsed
                    continue
                if follow is None or not follow():
                    if follow is not None:  # one last look: the monitor may have flushed on exit
                        follow = None
                        continue
                    return
                time.sleep(0.05)
        finally:
            if f is not None:
                f.close()

    def _rotated(self, f) -> bool:
        """The path now names another file, or ours was truncated below what we read."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # removed: what we hold is still readable to its end
        return st.st_ino != os.fstat(f.fileno()).st_ino or st.st_size < f.tell()

    def lines(self, follow: Callable[[], bool] | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        """(stream, docker timestamp, line-with-newline) with partial records joined."""
        pending: dict[int, tuple[bytes, bytes]] = {}
        for ts, stream, partial, content in self._records(follow):
            first_ts, text = pending.pop(stream, (ts, b""))
            text += content
            if partial:
                pending[stream] = (first_ts, text)
                continue
            yield stream, _docker_ts(first_ts), text + b"\n"
        for stream, (ts, text) in pending.items():
            if text:
                yield stream, _docker_ts(ts), text

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
