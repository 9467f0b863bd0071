"""Attach with `logs=1`: the container's logged output first, then (with `stream=1`) the live stdio.

dockerd answers `POST /attach?logs=1&stream=0` with what the container has printed so far and ends the stream;
with stream=1 the live output follows. docker-py's `attach(logs=True, stream=False)` and `docker start -a` of a
stopped container depend on it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

# docker-py reads an upgraded response's body from the raw socket under http.client's buffered reader: bytes that
# arrive together with the 101 headers are buffered there and lost to it. Logged output is ready at once (live
# output never is), so it waits this long after the headers, as dockerd's log reading effectively does.
_FIRST_WRITE_DELAY = 0.05


class LogsThenLive:
    """A StreamSession over logged lines, followed by a live session (or the end)."""

    def __init__(self, lines: Iterator[tuple[int, bytes]], live, tty: bool) -> None:
        self._lines = lines
        self._live = live
        self.tty = tty
        self._first = True

    def read(self) -> tuple[int, bytes] | None:
        if self._first:
            self._first = False
            time.sleep(_FIRST_WRITE_DELAY)
        if self._lines is not None:
            item = next(self._lines, None)
            if item is not None:
                return item
            self._lines = None
        return self._live.read() if self._live is not None else None

    def write(self, data: bytes) -> None:
        if self._live is not None:
            self._live.write(data)

    def close_stdin(self) -> None:
        if self._live is not None:
            self._live.close_stdin()

    def resize(self, height: int, width: int) -> None:
        if self._live is not None:
            self._live.resize(height, width)

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
