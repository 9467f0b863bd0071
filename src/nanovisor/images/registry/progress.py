"""Progress messages in dockerd's JSON-message shape, and the plumbing that carries them.

Pull and push call a `progress(message)` callback from several threads; `Reporter` serializes those calls and
rate-limits byte counters (dockerd sends at most one update per layer every 100 ms). `stream()` turns an
operation into the iterator of messages the API writes as newline-delimited JSON."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from nanovisor import units

Progress = Callable[[dict], None]
BAR_WIDTH = 50
THROTTLE = 0.1


def short(digest: str) -> str:
    """The per-layer id dockerd shows: 12 hex characters of the blob digest."""
    return digest.removeprefix("sha256:")[:12]


def human_size(n: float) -> str:
    """What progress bars print: 32.77kB (go-units HumanSize with 4 significant digits)."""
    return units.human_size(n, 4)


def bar(current: int, total: int) -> str:
    """moby's JSONProgress.String() at the daemon's width: "[=====>     ]  1.2MB/3.4MB"."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(int(current / total * 100) // 2, BAR_WIDTH)
    box = "[" + "=" * pct + ">" + " " * (BAR_WIDTH - pct) + "] "
    numbers = f"{human_size(current):>8}/{human_size(total)}" if current <= total else f"{human_size(current):>8}"
    return box + numbers


def status(text: str, id: str | None = None) -> dict:
    msg: dict[str, Any] = {"status": text}
    if id is not None:
        msg["id"] = id
    return msg


def layer(text: str, id: str) -> dict:
    return {"status": text, "progressDetail": {}, "id": id}


def counter(text: str, id: str, current: int, total: int) -> dict:
    return {"status": text, "progressDetail": {"current": current, "total": total},
            "progress": bar(current, total), "id": id}


class Reporter:
    """Thread-safe front of a Progress callback; drops byte-counter updates that come too fast."""

    def __init__(self, sink: Progress | None) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}

    def __call__(self, msg: dict) -> None:
        if self._sink is None:
            return
        with self._lock:
            self._sink(msg)

    def bytes(self, text: str, id: str, current: int, total: int) -> None:
        if self._sink is None:
            return
        now = time.monotonic()
        key = (text, id)
        if current < total and now - self._last.get(key, 0.0) < THROTTLE:
            return
        self._last[key] = now
        self(counter(text, id, current, total))


_DONE = object()


def stream(operation: Callable[[Progress, threading.Event], Any]) -> Iterator[dict]:
    """Runs operation(progress, cancel) in a thread, yielding its messages; re-raises its error at the end.
    Closing the iterator early (client went away) sets cancel, which pull/push check between chunks."""
    q: queue.Queue = queue.Queue()
    cancel = threading.Event()
    box: list[BaseException] = []

    def run() -> None:
        try:
            operation(q.put, cancel)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            box.append(e)
        finally:
            q.put(_DONE)

    t = threading.Thread(target=run, name="registry-op", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                break
            yield item
    finally:
        cancel.set()
    t.join()
    if box:
        raise box[0]
