"""Live stdio of an exec: a `RUNTIME exec` child of this engine process.

It implements engine.StreamSession like runtime.monitor.AttachSession (attach through conmon's socket), so
the API's hijack code and the CLI's terminal code serve either.
"""

from __future__ import annotations

import errno
import os
import selectors
import subprocess
import threading

STDOUT, STDERR = 1, 2  # Docker's stream numbers (stdcopy)


class ExecSession:
    """A process started by `RUNTIME exec` in the foreground, a child of this engine process, so its exit
    status is ours to collect. With a TTY the runtime gets a pty of ours as its controlling terminal (runc
    relays it to the container's console, and follows its window size)."""

    def __init__(self, argv_for_console, tty: bool, stdin: bool, on_exit=None) -> None:
        self.tty = tty
        self.stdin = stdin
        self.on_exit = on_exit
        self.master: int | None = None
        self._sel = selectors.DefaultSelector()
        self._open: set[int] = set()
        self.exit_code: int | None = None
        self._detached = False
        # a byte on this pipe wakes read() when the client detaches (closing a selected fd does not)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        argv = argv_for_console(None)
        if tty:
            import pty
            import tty as ttymod

            self.master, slave = pty.openpty()
            ttymod.setraw(slave)
            try:
                self.proc = subprocess.Popen(["setsid", "--ctty", *argv], stdin=slave, stdout=slave, stderr=slave,
                                             close_fds=True)
            finally:
                os.close(slave)
            self._sel.register(self.master, selectors.EVENT_READ, STDOUT)
            self._open.add(self.master)
            return
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
        self._sel.register(self.proc.stdout, selectors.EVENT_READ, STDOUT)
        self._sel.register(self.proc.stderr, selectors.EVENT_READ, STDERR)
        self._open = {self.proc.stdout.fileno(), self.proc.stderr.fileno()}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read(self) -> tuple[int, bytes] | None:
        while self._open:
            for key, _ in self._sel.select():
                if key.data is None:  # detached: the process runs on, its output is drained unseen
                    threading.Thread(target=self._drain, name="exec-drain", daemon=True).start()
                    return None
                fd = key.fd if isinstance(key.fileobj, int) else key.fileobj.fileno()
                try:
                    data = os.read(fd, 65536)
                except OSError as e:
                    if e.errno != errno.EIO:  # EIO: the pty's last writer is gone
                        raise
                    data = b""
                if data:
                    return key.data, data
                self._sel.unregister(key.fileobj)
                self._open.discard(fd)
        self.wait()
        return None

    def write(self, data: bytes) -> None:
        if not self.stdin:
            return
        if self.tty and self.master is not None:
            os.write(self.master, data)
        elif self.proc.stdin:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass

    def close_stdin(self) -> None:
        if self.tty and self.master is not None:
            try:
                os.write(self.master, b"\x04")  # EOF at the line discipline
            except OSError:
                pass
        elif self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def resize(self, height: int, width: int) -> None:
        if self.master is not None:
            import fcntl
            import struct
            import termios

            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def wait(self) -> int:
        if self.exit_code is None:
            code = self.proc.wait()
            self.exit_code = code if code >= 0 else 128 - code
            if self.on_exit:
                self.on_exit(self.exit_code)
        return self.exit_code

    def detach(self) -> None:
        """The client leaves (its detach keys); the process keeps running, as with dockerd."""
        self._detached = True
        os.write(self._wake_w, b"x")

    def _drain(self) -> None:
        self._sel.unregister(self._wake_r)
        while self.read() is not None:
            pass
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.master is not None:
            try:
                os.close(self.master)
            except OSError:
                pass
            self.master = None

    def close(self) -> None:
        if self._detached:
            return  # the drain thread ends the session when the process does
        self._close_fds()
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()
