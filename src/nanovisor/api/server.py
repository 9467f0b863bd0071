"""`nanovisor serve`: listen on unix and tcp hosts at once, one thread per connection, stop on SIGTERM/SIGINT.

Containers do not depend on this process (their monitors hold stdio and exit codes), so stopping is just:
close the listeners, remove the unix socket files we created, let in-flight streams die with the process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import socketserver
import threading
from pathlib import Path
from urllib.parse import urlsplit

from nanovisor import errors

log = logging.getLogger("nanovisor.api")


class _ThreadingUnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


class _ThreadingTCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class _ThreadingTCP6Server(_ThreadingTCPServer):
    address_family = socket.AF_INET6


def parse_host(host: str) -> tuple[str, object]:
    """"unix:///path" -> ("unix", "/path"); "tcp://h:p" -> ("tcp", (h, p)); like dockerd's -H."""
    if "://" not in host:
        host = ("unix://" if host.startswith("/") else "tcp://") + host
    u = urlsplit(host)
    if u.scheme == "unix":
        path = (u.netloc + u.path) or "/run/nanovisor/docker.sock"
        return "unix", path
    if u.scheme in ("tcp", "http"):
        try:
            port = u.port or 2375
        except ValueError:
            raise errors.InvalidParameter(f"invalid bind address ({host}): bad port") from None
        return "tcp", (u.hostname or "127.0.0.1", port)
    raise errors.InvalidParameter(f"invalid bind address ({host}): unsupported protocol {u.scheme!r}")


def _unix_listener(path: str, handler) -> _ThreadingUnixServer:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_socket() or p.exists():
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(p))
        except OSError:
            p.unlink()  # stale socket from a previous run
        else:
            raise errors.Conflict(f"{path}: another daemon is already listening on it")
        finally:
            probe.close()
    old = os.umask(0o117)
    try:
        srv = _ThreadingUnixServer(str(p), handler)
    finally:
        os.umask(old)
    return srv


def _tcp_listener(addr: tuple[str, int], handler) -> socketserver.TCPServer:
    cls = _ThreadingTCP6Server if ":" in addr[0] else _ThreadingTCPServer
    return cls(addr, handler)


def make_handler(engine):
    """A handler class bound to this engine and the route table (built once)."""
    from nanovisor.api.handler import ApiHandler
    from nanovisor.api.router import default_router

    return type("BoundApiHandler", (ApiHandler,), {"engine": engine, "router": default_router()})


class ApiServer:
    """All listeners of one serve(); start() returns, wait()/stop() for embedding (tests, the CLI)."""

    def __init__(self, engine, hosts: list[str]) -> None:
        handler = make_handler(engine)
        self.servers: list[socketserver.BaseServer] = []
        self.unix_paths: list[Path] = []
        self._stopped = threading.Event()
        self._started = False
        try:
            for host in hosts or ["unix:///run/nanovisor/docker.sock"]:
                kind, addr = parse_host(host)
                if kind == "unix":
                    self.servers.append(_unix_listener(addr, handler))
                    self.unix_paths.append(Path(addr))
                else:
                    self.servers.append(_tcp_listener(addr, handler))
                log.info("API listening on %s", host)
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        self._started = True
        for srv in self.servers:
            threading.Thread(target=srv.serve_forever, name=f"api-{srv.server_address}",
                             daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def wait(self) -> None:
        while not self._stopped.wait(3600):
            pass
        self.close()

    def close(self) -> None:
        for srv in self.servers:
            if self._started:
                srv.shutdown()  # returns once its serve_forever loop has left
            srv.server_close()
        for p in self.unix_paths:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        self.servers, self.unix_paths = [], []


def serve(engine, hosts: list[str]) -> None:
    """Serve the Docker Engine API for engine on hosts until SIGTERM or SIGINT."""
    server = ApiServer(engine, hosts)
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, lambda *_: server.stop()) for s in (signal.SIGTERM, signal.SIGINT)}
    else:
        previous = {}
    try:
        server.start()
        server.wait()
    finally:
        server.close()
        for s, h in previous.items():
            signal.signal(s, h)
        log.info("API server stopped")
