"""A container's output and input as the API hands them out: the log reader (following while the
container runs) and the attach session (connected at once, or as soon as a start creates the container,
so no output is missed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nanovisor.engine.containers import Container
from nanovisor.engine.logs import LogReader


def logs(engine, c: Container, stdout: bool, stderr: bool, follow: bool, since: float, until: float,
         timestamps: bool, tail: str) -> Iterator[tuple[int, bytes]]:
    reader = log_reader(engine.paths.container_dir(c.id), c)

    def still_running() -> bool:
        fresh = engine.containers.reload(c)
        if fresh is None:
            return False
        fresh = engine.current(fresh)
        return fresh.running or fresh.state["Status"] == "restarting"

    return reader.read(stdout, stderr, still_running if follow else None, since, until, timestamps, tail)


def log_reader(container_dir: Path, c: Container) -> LogReader:
    """A reader of the container's log in its driver's format; `none` keeps nothing to read (dockerd's 501)."""
    from nanovisor.engine.logconfig import driver_of, log_path
    from nanovisor.errors import NotImplemented_

    driver = driver_of(c.host_config)
    path = log_path(driver, container_dir, c.id)
    if path is None:
        raise NotImplemented_("configured logging driver does not support reading")
    legacy = container_dir / "ctr.log"  # written by conmon for every driver before nv-logger existed
    if driver != "k8s-file" and not path.exists() and legacy.exists():
        return LogReader(legacy, "k8s-file")
    return LogReader(path, driver)


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
