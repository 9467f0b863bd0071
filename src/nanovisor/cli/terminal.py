"""Pumping a StreamSession to this process's stdio: raw TTY mode, window size, stdin EOF."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import sys
import termios
import threading
import tty as ttymod
from collections.abc import Callable, Iterator


def terminal_size(fd: int = 1) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        return (rows, cols) if rows and cols else None
    except OSError:
        return None


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    if not enabled or not os.isatty(0):
        yield
        return
    saved = termios.tcgetattr(0)
    ttymod.setraw(0)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


def follow_resizes(resize: Callable[[int, int], None]) -> None:
    size = terminal_size()
    if size:
        resize(*size)

    def on_winch(signum, frame) -> None:
        s = terminal_size()
        if s:
            try:
                resize(*s)
            except Exception:
                pass

    signal.signal(signal.SIGWINCH, on_winch)


def pump(session, stdin: bool) -> None:
    """Copies the session's output to stdout/stderr until it ends; stdin (if asked) into the session."""
    if stdin:
        def feed() -> None:
            try:
                while True:
                    data = os.read(0, 65536)
                    if not data:
                        break
                    session.write(data)
            except OSError:
                pass
            session.close_stdin()

        threading.Thread(target=feed, daemon=True).start()
    out = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    while True:
        item = session.read()
        if item is None:
            break
        stream, data = item
        dest = out[stream]
        dest.write(data)
        dest.flush()
