"""Host process helpers: liveness that survives pid reuse, and waiting on a process we did not fork."""

from __future__ import annotations

import os
import select
import time


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    return int(data[data.rindex(b")") + 2:].split()[19])


def alive(pid: int, started: int = 0) -> bool:
    if pid <= 0:
        return False
    st = start_time(pid)
    if not st:
        return False
    try:  # a zombie still has /proc/PID/stat
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        if data[data.rindex(b")") + 2:data.rindex(b")") + 3] == b"Z":
            return False
    except OSError:
        return False
    return not started or st == started


def wait_exit(pid: int, started: int = 0, timeout: float | None = None) -> bool:
    """Blocks until pid exits (pidfd: no polling); True if it is gone."""
    if not alive(pid, started):
        return True
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return not alive(pid, started)
    try:
        if started and start_time(pid) != started:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return not alive(pid, started)
    finally:
        os.close(fd)
