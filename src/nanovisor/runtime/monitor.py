"""conmon's on-disk protocol, read in this one place: exit files, the OOM marker, the attach socket, the
control fifo and the k8s-file log format.

conmon (started by oci.OCIRuntime.create) is the per-container process that outlives the CLI and the daemon.
What it leaves, per container:
- EXIT_DIR/<id>: the exit code as text, written when the container's process exits (its mtime is the exit
  time). No file and no conmon process: conmon died without recording (killed, or a host reboot) → 255.
- BUNDLE/oom: present when the kernel's OOM killer ended the container (conmon's persist dir is the bundle).
- BUNDLE/attach: a SOCK_SEQPACKET socket; each packet from it starts with a stream byte (2 stdout, 3 stderr),
  what is sent to it goes to the container's stdin; shutting down the write side closes stdin.
- BUNDLE/ctl: a fifo of text commands; "1 HEIGHT WIDTH\\n" resizes the container's terminal.
- the log file: one record per line, `TIMESTAMP STREAM TAG CONTENT` (k8s-file) where TAG is F (full line) or P
  (partial: the line goes on in the next record); rotated or truncated in place by --log-size-max.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from nanovisor.runtime import logfiles, procs

STDOUT, STDERR = 1, 2
_ATTACH_STREAM = {2: STDOUT, 3: STDERR}
_LOG_STREAM = {b"stdout": STDOUT, b"stderr": STDERR}
JOIN_LIMIT = 1 << 20  # bytes of one unfinished line a log reader keeps before handing them out
NO_EXIT_CODE = 255  # Docker's code for a container whose exit nobody recorded


class Monitor:
    """One container's conmon: its process (pid + start time, so a reused pid is not mistaken for it) and
    the files it writes."""

    def __init__(self, cid: str, bundle: Path, exit_dir: Path, pid: int = 0, started: int = 0) -> None:
        self.cid = cid
        self.bundle = bundle
        self.exit_file = exit_dir / cid
        self.pid = pid
        self.started = started

    # exit --------------------------------------------------------------------------------------------
    def alive(self) -> bool:
        return procs.alive(self.pid, self.started)

    def exited(self) -> bool:
        """The container's process is gone: conmon wrote its exit file, or conmon itself is gone."""
        return self.exit_written() or not self.alive()

    def wait(self, timeout: float | None) -> bool:
        """Blocks until conmon exits (or timeout); True if it is gone."""
        return procs.wait_exit(self.pid, self.started, timeout)

    def exit_written(self) -> bool:
        return self.exit_file.exists()

    def exit_status(self) -> tuple[int, float]:
        """(exit code, when) as conmon recorded them; (255, now) when it could not."""
        try:
            text = self.exit_file.read_text().strip()
            return int(text), self.exit_file.stat().st_mtime
        except (OSError, ValueError):
            return NO_EXIT_CODE, time.time()

    def exit_recorded_at(self) -> float:
        """When conmon wrote the exit file (0 if it has not)."""
        try:
            return self.exit_file.stat().st_mtime
        except OSError:
            return 0.0

    def oom_killed(self) -> bool:
        return (self.bundle / "oom").exists()

    def wait_logs_flushed(self) -> None:
        """The log writer (json-file, local) ends after conmon; until then the last lines may be in flight."""
        logfiles.wait_flushed(self.bundle)

    def forget_exit(self) -> None:
        """Before a (re)start, and once the exit is recorded elsewhere."""
        self.exit_file.unlink(missing_ok=True)

    # stdio -------------------------------------------------------------------------------------------
    def attach(self, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> AttachSession:
        return AttachSession(self.bundle, tty, stdin, stdout, stderr)

    def resize(self, height: int, width: int) -> None:
        resize(self.bundle, height, width)


class AttachSession:
    """A client of conmon's attach socket (an engine.StreamSession: the API's hijack code and the CLI's
    terminal code serve it like an exec session)."""

    def __init__(self, bundle: Path, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.bundle = bundle
        self.tty = tty
        self.want = {STDOUT: stdout, STDERR: stderr}
        self.stdin = stdin
        self.sock: socket.socket | None = None
        self._connected = threading.Event()
        self._closed = False

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.connect(str(self.bundle / "attach"))
        self.sock = sock
        self._connected.set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    def cancel(self) -> None:
        """Gives up waiting for a start that will not come."""
        self._closed = True
        self._connected.set()

    def read(self) -> tuple[int, bytes] | None:
        self._connected.wait()
        while not self._closed and self.sock is not None:
            try:
                packet = self.sock.recv(65536)
            except OSError:
                return None
            if not packet:
                return None
            stream = STDOUT if self.tty else _ATTACH_STREAM.get(packet[0], STDOUT)
            if self.want.get(stream) and len(packet) > 1:
                return stream, packet[1:]
        return None

    def write(self, data: bytes) -> None:
        if not self.stdin:
            return
        self._connected.wait()  # stdin sent before the start waits for it, like the output does
        if self.sock is None:
            return
        for i in range(0, len(data), 8192):
            self.sock.send(data[i:i + 8192])

    def close_stdin(self) -> None:
        if self.stdin:
            self._connected.wait()
        if self.sock is not None and self.stdin:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def resize(self, height: int, width: int) -> None:
        resize(self.bundle, height, width)

    def detach(self) -> None:
        self.close()  # conmon keeps the container and its stdio; only this client leaves

    def close(self) -> None:
        self._closed = True
        self._connected.set()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass


def resize(bundle: Path, height: int, width: int) -> None:
    """A window resize through conmon's control fifo; nothing when conmon is gone."""
    try:
        fd = os.open(bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, f"1 {int(height)} {int(width)}\n".encode())
    except OSError:
        pass
    finally:
        os.close(fd)


# the k8s-file log --------------------------------------------------------------------------------------
def parse_log_record(record: bytes) -> tuple[bytes, int, bool, bytes] | None:
    """One k8s-file line → (conmon timestamp, stream 1|2, partial, content); None if it is not a record."""
    try:
        ts, stream, tag, content = record.split(b" ", 3)
    except ValueError:
        parts = record.split(b" ")
        if len(parts) != 3:
            return None
        ts, stream, tag = parts  # an empty content field
        content = b""
    return ts, _LOG_STREAM.get(stream, STDOUT), tag == b"P", content


def docker_timestamp(ts: bytes) -> bytes:
    """conmon writes 2024-01-01T00:00:00.123456789+00:00; docker shows 2024-01-01T00:00:00.123456789Z."""
    return ts[:-6] + b"Z" if ts.endswith(b"+00:00") else ts


def log_records(path: Path, follow: Callable[[], bool] | None = None) -> Iterator[tuple[bytes, int, bool, bytes]]:
    """Raw records of a k8s-file log (rotated in place by --log-size-max); follow as logfiles.file_lines."""
    for line in logfiles.file_lines(path, follow):
        parsed = parse_log_record(line)
        if parsed:
            yield parsed


def log_lines(path: Path, follow: Callable[[], bool] | None = None) -> Iterator[tuple[int, bytes, bytes]]:
    """A k8s-file log as `docker logs` shows it (see join_partial)."""
    return join_partial((docker_timestamp(ts), stream, partial, content)
                        for ts, stream, partial, content in log_records(path, follow))


def join_partial(records: Iterator[tuple[bytes, int, bool, bytes]]) -> Iterator[tuple[int, bytes, bytes]]:
    """(stream, timestamp, line with its newline) from (timestamp, stream, partial, content) records: partial
    records joined so a long line comes out whole, as `docker logs` shows it; a partial line left at the end
    comes out without a newline. A line that never ends is handed out in pieces of JOIN_LIMIT: a container
    cannot make a reader hold its whole output."""
    pending: dict[int, tuple[bytes, bytes]] = {}
    for ts, stream, partial, content in records:
        first_ts, text = pending.pop(stream, (ts, b""))
        text += content
        if partial and len(text) < JOIN_LIMIT:
            pending[stream] = (first_ts, text)
            continue
        yield stream, first_ts, text if partial else text + b"\n"
    for stream, (ts, text) in pending.items():
        if text:
            yield stream, ts, text
