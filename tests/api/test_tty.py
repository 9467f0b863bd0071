"""`docker run -it` and `docker exec -it` through a real pseudo-terminal, as a person at a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

import pytest

DEADLINE = 60.0


class Terminal:
    """The docker CLI on the slave side of a pty we hold the master of."""

    def __init__(self, env: dict, *args: str, rows: int = 30, cols: int = 100) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(["docker", *args], stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.screen = b""

    def expect(self, text: bytes) -> bytes:
        deadline = time.monotonic() + DEADLINE
        while text not in self.screen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} never appeared; screen: {self.screen!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{text!r} never appeared before EOF; screen: {self.screen!r}")
                self.screen += chunk
        return self.screen

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self) -> int:
        # keep draining so the CLI never blocks on a full pty
        deadline = time.monotonic() + DEADLINE
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.screen += os.read(self.master, 4096)
                except OSError:
                    pass
        code = self.proc.wait(5)
        os.close(self.master)
        return code


@pytest.fixture
def term(docker_env):
    opened = []

    def open_(*args: str, **kw) -> Terminal:
        t = Terminal(docker_env, *args, **kw)
        opened.append(t)
        return t

    yield open_
    for t in opened:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait()


def test_run_it_sees_a_terminal_of_the_right_size(term, image):
    t = term("run", "-it", "--rm", image, "sh", "-c", "tty; stty size; exit 5", rows=33, cols=101)
    t.expect(b"33 101")
    assert b"/dev/pts/" in t.screen
    assert t.wait() == 5


def test_run_it_interactive_shell(term, image):
    t = term("run", "-it", "--rm", image, "sh")
    t.expect(b"# ")
    t.send(b"echo $((6*7))\r")
    t.expect(b"42")
    t.send(b"exit 4\r")
    assert t.wait() == 4


def test_run_it_ctrl_c_interrupts(term, image):
    # cat is not PID 1 (which would ignore SIGINT, as under docker), so ^C kills it: status 130
    t = term("run", "-it", "--rm", image, "sh", "-c", "echo ready; cat; exit $?")
    t.expect(b"ready")
    t.send(b"\x03")
    assert t.wait() == 130


def test_exec_it(term, running):
    t = term("exec", "-it", running, "sh", "-c", "tty; exit 3")
    t.expect(b"/dev/pts/")
    assert t.wait() == 3
