"""Talking to a running container: the shim's control socket, QMP, and the exec relay.

The exec relay is the host process conmon waits for on `exec --detach` (like the one runc leaves behind): it
streams stdio between its own stdio (or a host pty) and the exec'd process in the guest, and exits with that
process' wait status.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import termios

from nanovisor.runtime.vm import protocol
from nanovisor.runtime.vm.protocol import Decoder, frame
from nanovisor.runtime.vm.shim import FORWARD, exit_like, write_all
from nanovisor.runtime.vm.state import Container, RuntimeError_, connect_unix


def connect(c: Container) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connect_unix(s, c.ctl)
    except OSError:
        s.close()
        raise RuntimeError_("container not running") from None
    return s


def call(c: Container, req: dict, timeout: float = 30.0) -> dict:
    with connect(c) as s:
        s.settimeout(timeout)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError_("container not running")
            buf += chunk
    resp = json.loads(buf.split(b"\n", 1)[0])
    if resp.get("error"):
        raise RuntimeError_(resp["error"])
    return resp


def qmp(c: Container, command: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        try:
            connect_unix(s, c.vmdir / "qmp.sock")
        except OSError:
            raise RuntimeError_("container not running") from None
        f = s.makefile("rwb")
        f.readline()  # greeting
        for cmd in ("qmp_capabilities", command):
            f.write(json.dumps({"execute": cmd}).encode() + b"\n")
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if "error" in msg:
                    raise RuntimeError_(msg["error"].get("desc", str(msg["error"])))
                if "return" in msg:
                    break


def _winsize(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def exec_relay(c: Container, kv: list[tuple[str, str]], tty_fd: int | None, report_fd: int) -> None:
    """Start the process, report "" (ok) or the error on report_fd, relay until it exits; never returns."""
    if tty_fd is not None:
        rows, cols = _winsize(tty_fd)
        if rows and cols and not any(k == "winsize" for k, _ in kv):
            kv = [*kv, ("winsize", f"{rows} {cols}")]
    sock = connect(c)
    sock.sendall(json.dumps({"op": "exec"}).encode() + b"\n" + frame(protocol.EXEC, 0, protocol.kv(kv)))
    dec = Decoder()
    sel = selectors.DefaultSelector()
    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wfd)
    pending: list[int] = []
    for s in (*FORWARD, signal.SIGWINCH):
        signal.signal(s, lambda n, _f: pending.append(n))
    sel.register(sock, selectors.EVENT_READ, "sock")
    sel.register(rfd, selectors.EVENT_READ, "sig")
    in_fd = tty_fd if tty_fd is not None else 0
    started = False

    def report(msg: str) -> None:
        nonlocal report_fd
        if report_fd < 0 and msg:  # foreground exec: tell the caller directly, as runc does
            os.write(2, f"exec failed: unable to start container process: {msg}\n".encode())
        if report_fd >= 0:
            os.write(report_fd, msg.encode() or b"\0")
            os.close(report_fd)
            report_fd = -1

    while True:
        for key, _ev in sel.select():
            if key.data == "sig":
                try:
                    os.read(rfd, 512)
                except BlockingIOError:
                    pass
                sigs, pending[:] = list(pending), []
                for n in sigs:
                    if n == signal.SIGWINCH and tty_fd is not None:
                        r, cl = _winsize(tty_fd)
                        sock.sendall(frame(protocol.RESIZE, 0, f"{r} {cl}".encode()))
                    elif n != signal.SIGWINCH:
                        sock.sendall(frame(protocol.KILL, 0, f"{n} 0".encode()))
            elif key.data == "stdin":
                try:
                    data = os.read(in_fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    sock.sendall(frame(protocol.STDIN, 0, data))
                else:
                    sel.unregister(in_fd)
                    if tty_fd is None:
                        sock.sendall(frame(protocol.STDIN, 0))
            else:
                data = sock.recv(65536)
                if not data:
                    report("container stopped")
                    exit_like(signal.SIGKILL)
                for t, _i, payload in dec.feed(data):
                    if t == protocol.CREATED:
                        if payload:
                            report(payload.decode(errors="replace"))
                            os._exit(255)
                        started = True
                        report("")
                        try:
                            os.set_blocking(in_fd, False)
                            sel.register(in_fd, selectors.EVENT_READ, "stdin")
                        except PermissionError:  # /dev/null or a file: epoll refuses it, it is at EOF anyway
                            if tty_fd is None:
                                sock.sendall(frame(protocol.STDIN, 0))
                    elif t in (protocol.STDOUT, protocol.STDERR) and payload:
                        out = tty_fd if tty_fd is not None else (1 if t == protocol.STDOUT else 2)
                        write_all(out, payload)
                    elif t == protocol.EXIT:
                        if not started:
                            report("container stopped")
                        exit_like(int(payload))
