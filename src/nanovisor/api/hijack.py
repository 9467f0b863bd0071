"""Hijacked connections (attach, exec start): raw bidirectional bytes between a socket and a StreamSession.

Output (session -> client) is copied on the request thread, stdcopy-framed without a TTY; input
(client -> session) on a helper thread. The client's half-close (docker CLI's CloseWrite on stdin EOF)
becomes close_stdin() while output keeps flowing (for attach only when the container is StdinOnce without
a TTY, as in moby, so a detached `docker attach` leaves stdin usable for the next one); when output ends we send FIN and wait for the client to
close. With a TTY, the detach key sequence (default ctrl-p,ctrl-q) ends the attach without closing stdin.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import BinaryIO

from nanovisor.api import stdcopy
from nanovisor.api.responses import MUX_STREAM, RAW_STREAM, Hijack
from nanovisor.api.router import version_at_least

log = logging.getLogger("nanovisor.api")

_CLIENT_CLOSE_GRACE = 5.0  # seconds to wait for the client's FIN after ours before closing hard


class DetachMatcher:
    """Finds the detach sequence in stdin; bytes of a broken partial match are passed on unchanged."""

    def __init__(self, keys: bytes | None) -> None:
        self.keys = keys or b""
        self.pending = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            self.pending += bytes((b,))
            if self.keys.startswith(self.pending):
                if self.pending == self.keys:
                    return bytes(out), True
                continue
            out += self.pending[:-1]
            last = self.pending[-1:]
            if self.keys.startswith(last):
                self.pending = last
            else:
                out += last
                self.pending = b""
        return bytes(out), False


def header(upgrade: bool, tty: bool, api_version: str) -> bytes:
    """The response head moby writes by hand before handing the socket over."""
    ctype = MUX_STREAM if not tty and version_at_least(api_version, "1.42") else RAW_STREAM
    if upgrade:
        return (f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {ctype}\r\nConnection: Upgrade\r\n"
                "Upgrade: tcp\r\n\r\n").encode()
    return f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n\r\n".encode()


def run(conn: socket.socket, rfile: BinaryIO, wfile: BinaryIO, h: Hijack, upgrade: bool,
        api_version: str) -> None:
    """Serve one hijacked connection to its end; the caller closes the connection afterwards."""
    session = h.session
    done = threading.Event()
    reader = threading.Thread(target=_copy_input, args=(rfile, h, done), daemon=True,
                              name="hijack-stdin")
    try:
        wfile.write(header(upgrade, session.tty, api_version))
        reader.start()
        _copy_output(wfile, session)
    except OSError as e:
        log.debug("hijacked connection ended: %s", e)
    finally:
        done.set()
        # socket.socket.shutdown, not conn.shutdown: on a TLS connection (an ssl.SSLSocket) the latter drops
        # the SSL object under the stdin thread's feet; a bare FIN is a clean EOF for Go's TLS client.
        try:
            socket.socket.shutdown(conn, socket.SHUT_WR)
        except OSError:
            pass
        if reader.is_alive():
            reader.join(_CLIENT_CLOSE_GRACE)
        try:
            socket.socket.shutdown(conn, socket.SHUT_RDWR)
        except OSError:
            pass
        _quietly(session.close)
        if h.on_done:
            _quietly(h.on_done)


def _copy_output(wfile: BinaryIO, session) -> None:
    mux = not session.tty
    while True:
        item = session.read()
        if item is None:
            return
        stream, data = item
        if data:
            wfile.write(stdcopy.frame(stream, data) if mux else data)


def _copy_input(rfile: BinaryIO, h: Hijack, done: threading.Event) -> None:
    session = h.session
    matcher = DetachMatcher(h.detach_keys if session.tty else None)
    writable = h.stdin
    # An attach made before the start has nowhere to put stdin yet: hold it until the container runs.
    # (AttachSession exposes wait_connected; a session whose write() waits itself needs nothing here.)
    wait_connected = getattr(session, "wait_connected", None)
    try:
        if writable and wait_connected is not None:
            wait_connected()
        while True:
            data = rfile.read1(65536)
            if not data:
                break
            if not writable or done.is_set():
                continue
            data, detached = matcher.feed(data)
            try:
                if data:
                    session.write(data)
            except Exception as e:  # the process's stdin went away: keep reading, drop input
                log.debug("stdin write failed: %s", e)
                writable = False
            if detached:
                log.debug("detach keys received")
                _quietly(getattr(session, "detach", session.close))
                return
    except (OSError, ValueError):
        pass
    if h.stdin and h.close_stdin_on_eof and writable and not done.is_set():
        _quietly(session.close_stdin)


def _quietly(fn) -> None:
    try:
        fn()
    except Exception as e:
        log.debug("ignored during hijack teardown: %s", e)
