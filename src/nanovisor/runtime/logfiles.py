"""Container logs on disk, per log driver: where they go, the writer that makes dockerd's json-file format, and
reading them back across rotations.

- json-file: `<container dir>/<id>-json.log`, one `{"log","stream","time"}` object per line, rotated to
  `.1`, `.2`... (`.gz` with compress): dockerd's format, so tools that read dockerd's files read ours.
- local: the same lines in `local-logs/container.log`, with dockerd's local defaults (20 MB × 5, compressed).
  dockerd's own local format is internal (only `docker logs` reads it); ours is readable JSON.
- k8s-file: conmon writes the file itself (podman's format, no extra process).
- none: nothing is kept; `docker logs` is refused.

conmon writes only k8s-file. For json-file and local it writes into a fifo read by nv-logger
(guest/host/logger.c, ~100 KB, one per running container), which converts and rotates. The logger exits when
conmon closes the fifo, so waiting for it (`wait_flushed`) is how a reader knows the log is complete.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nanovisor.runtime import procs

WRITER_DRIVERS = ("json-file", "local")  # what nv-logger writes
STDOUT, STDERR = 1, 2
_STREAM = {"stdout": STDOUT, "stderr": STDERR}
LOGGER_PID_FILE = "logger.pid"
FLUSH_TIMEOUT = 5.0  # the logger ends as soon as conmon does; this bounds a stuck one


@dataclass
class LogSpec:
    driver: str           # json-file | local | k8s-file | none
    path: Path | None     # the current file (None for none)
    max_size: int = -1    # bytes; -1 = unlimited
    max_file: int = 1
    compress: bool = False


def start_writer(spec: LogSpec, bundle: Path) -> Path:
    """Starts nv-logger on a fresh fifo in the bundle; returns the fifo, for conmon's k8s-file output."""
    assert spec.path is not None
    fifo = bundle / "log.fifo"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo, 0o600)
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(logger_binary()), str(fifo), str(spec.path), str(spec.max_size), str(spec.max_file),
                           "1" if spec.compress else "0", str(bundle / LOGGER_PID_FILE)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        from nanovisor.errors import SystemError_

        raise SystemError_(f"log writer: {proc.stderr.decode(errors='replace').strip()}")
    pid, _ = _writer(bundle)
    (bundle / LOGGER_PID_FILE).write_text(f"{pid} {procs.start_time(pid)}\n")
    return fifo


def stop_writer(bundle: Path) -> None:
    """After a create that failed: conmon never opened the fifo, so the logger would wait for it."""
    import signal

    pid, started = _writer(bundle)
    if pid and procs.alive(pid, started):
        os.kill(pid, signal.SIGKILL)


def wait_flushed(bundle: Path, timeout: float = FLUSH_TIMEOUT) -> None:
    """Blocks until the container's logger has written everything conmon gave it (it has exited)."""
    pid, started = _writer(bundle)
    if pid:
        procs.wait_exit(pid, started, timeout)


def _writer(bundle: Path) -> tuple[int, int]:
    """(pid, start time) of the bundle's logger as its pid file says (start time 0 before start_writer adds
    it); (0, 0) when there is none."""
    try:
        fields = [int(f) for f in (bundle / LOGGER_PID_FILE).read_text().split()]
    except (OSError, ValueError):
        return 0, 0
    pid, started = (fields + [0, 0])[:2]
    return pid, started


_binary: Path | None = None


def logger_binary() -> Path:
    global _binary
    if _binary is None:
        from nanovisor.runtime.vm import guest  # the host tools are built and cached together

        _binary = guest.host_tool("nv-logger")
    return _binary


# reading -------------------------------------------------------------------------------------------------
def rotated_files(path: Path) -> list[Path]:
    """The rotated files of a log, oldest first (path.N[.gz] … path.1[.gz])."""
    found = []
    for n in itertools.count(1):  # as many as exist: max-file has no upper bound
        plain, packed = path.with_name(f"{path.name}.{n}"), path.with_name(f"{path.name}.{n}.gz")
        if plain.exists():
            found.append(plain)
        elif packed.exists():
            found.append(packed)
        else:
            break
    return found[::-1]


def parse_json_record(line: bytes) -> tuple[bytes, int, bool, bytes] | None:
    """One json-file line → (docker timestamp, stream, partial, content without its newline)."""
    try:
        entry = json.loads(line)
        text: str = entry["log"]
    except (ValueError, KeyError, TypeError):
        return None
    partial = not text.endswith("\n")
    content = text.encode("utf-8", "surrogateescape") if partial else text[:-1].encode("utf-8", "surrogateescape")
    return str(entry.get("time", "")).encode(), _STREAM.get(entry.get("stream"), STDOUT), partial, content


def json_records(path: Path, follow: Callable[[], bool] | None = None) -> Iterator[tuple[bytes, int, bool, bytes]]:
    """Every record of a json-file log: the rotated files, then the current one (followed while follow() is
    true). A rotation while following is seen as a new file at the path: the old one is read to its end first."""
    import gzip  # here: every CLI start reaches this module, few read a compressed log

    for old in rotated_files(path):
        opener = gzip.open if old.suffix == ".gz" else open
        try:
            with opener(old, "rb") as f:
                for line in f:
                    parsed = parse_json_record(line)
                    if parsed:
                        yield parsed
        except (OSError, EOFError):
            continue  # rotated away (or still being compressed) while we read
    for line in file_lines(path, follow):
        parsed = parse_json_record(line)
        if parsed:
            yield parsed


def file_lines(path: Path, follow: Callable[[], bool] | None = None) -> Iterator[bytes]:
    """The lines of a log file; with follow, waits for more while follow() is true (after it turns false, one
    last look: the writer may have flushed at the exit).

    The file stays open while it is read: a client that reads a stream after removing the container
    (docker-py's `containers.run(remove=True)` joins the log stream after its remove) still gets every line.
    It is opened again only when it was rotated or truncated, once what was written to it is read."""
    f = None
    buf = b""
    try:
        while True:
            if f is None:
                try:
                    f = open(path, "rb")  # held across yields; closed in finally
                except FileNotFoundError:
                    f = None
            chunk = f.read() if f is not None else b""
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                yield from lines
                continue
            if f is not None and _replaced(path, f):
                f.close()
                f, buf = None, b""
                continue
            if follow is None or not follow():
                if follow is not None:
                    follow = None
                    continue
                return
            time.sleep(0.05)
    finally:
        if f is not None:
            f.close()


def _replaced(path: Path, f) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return st.st_ino != os.fstat(f.fileno()).st_ino or st.st_size < f.tell()
