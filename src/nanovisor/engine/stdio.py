"""A container's output and input as the API hands them out: the log reader (following while the
container runs) and the attach session (connected at once, or as soon as a start creates the container,
so no output is missed)."""

from __future__ import annotations

from collections.abc import Iterator

from nanovisor.engine.containers import Container
from nanovisor.engine.logs import LogReader


def logs(engine, c: Container, stdout: bool, stderr: bool, follow: bool, since: float, until: float,
         timestamps: bool, tail: str) -> Iterator[tuple[int, bytes]]:
    reader = LogReader(engine.paths.container_dir(c.id) / "ctr.log")

    def still_running() -> bool:
        fresh = engine.containers.reload(c)
        if fresh is None:
            return False
        fresh = engine.current(fresh)
        return fresh.running or fresh.state["Status"] == "restarting"

    return reader.read(stdout, stderr, still_running if follow else None, since, until, timestamps, tail)


def attach(engine, c: Container, stdin: bool, stdout: bool, stderr: bool, logs: bool = False,
           stream: bool = True):
    """logs: the log so far first (then, with stream, the live output), as dockerd's attach?logs=1."""
    if logs:
        from nanovisor.engine.replay import LogsThenLive

        lines = engine.container_logs(c.id, stdout=stdout, stderr=stderr)
        live = engine.container_attach(c.id, stdin, stdout, stderr) if stream else None
        return LogsThenLive(lines, live, bool(c.config.get("Tty")))
    session = engine.lifecycle.monitor(c).attach(bool(c.config.get("Tty")),
                                                 stdin and bool(c.config.get("OpenStdin")), stdout, stderr)
    if c.running:
        session.connect()
        return session

    def on_created(_: Container) -> None:
        session.connect()

    cancel = engine.lifecycle.on_created(c.id, on_created)
    original_close = session.close

    def close() -> None:
        cancel()
        original_close()

    session.close = close  # type: ignore[method-assign]
    return session
