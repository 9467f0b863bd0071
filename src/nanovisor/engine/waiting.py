"""`docker wait` (and `run`'s wait for the exit): conditions not-running, next-exit and removed.

The waiter is made before the caller starts streaming (so the start sequence it waits past is fixed) and
blocks when called. In serve, the exit watcher reaps and this only re-reads the record on every change this
process makes (or every 50 ms for changes by others); elsewhere this process reaps what it waits for.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from nanovisor.engine.containers import Container
from nanovisor.errors import InvalidParameter


def wait_result(c: Container, code: int | None = None) -> dict:
    err = c.state.get("Error") or ""
    return {"StatusCode": c.state.get("ExitCode", 0) if code is None else code,
            "Error": {"Message": err} if err else None}


def waiter(engine, ref: str, condition: str = "not-running") -> Callable[[], dict]:
    if condition in ("", None):
        condition = "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f"invalid condition: \"{condition}\"")
    c = engine.get(ref)
    seq = c.state.get("_StartSeq", 0)
    running_now = c.running
    since_ns = time.time_ns()
    # the run whose exit ends the wait: the current one, or (stopped, or restarting: moby counts a
    # restarting container as running) the next; a restart policy restarting it does not hide that exit
    restarting = c.state["Status"] == "restarting"
    target = seq if running_now else seq + 1
    lifecycle, containers = engine.lifecycle, engine.containers

    def exit_code(of: Container, since: int = 0) -> int:
        """Its last exit's code, or with since its first exit after that time (from the die events)."""
        code = engine.event_log.last_exit_code(of.id, since)
        return of.state.get("ExitCode", 0) if code is None else code

    def done(fresh: Container | None) -> dict | None:
        if fresh is None:  # auto-removed: its last exit code lives on in the die event
            return {"StatusCode": exit_code(c), "Error": None}
        if condition == "removed":
            return None
        if fresh.state.get("_ReapedSeq", 0) >= target:
            return wait_result(fresh, exit_code(fresh, since_ns))
        return None

    def wait() -> dict:
        nonlocal c
        while True:
            fresh = containers.reload(c)
            if fresh is not None:
                c = fresh
                if fresh.running and not engine.persistent:  # serve's watcher reaps; others reap here
                    lifecycle.wait_exit(fresh, 5.0)
                    lifecycle.reconcile(fresh)
                    fresh = containers.reload(fresh)
            result = done(fresh)
            if result is not None:
                return result
            if fresh is not None and fresh.running and engine.persistent:
                engine.current(fresh)  # watched from now on, in case it was started elsewhere
            containers.wait_change(0.05)

    if condition == "not-running" and not running_now and not restarting:
        result = wait_result(c)
        return lambda: result
    return wait
