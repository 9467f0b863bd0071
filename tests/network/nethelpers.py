"""Helpers for the network tests (a module, not the conftest: several conftest.py files coexist)."""

from __future__ import annotations

import subprocess
import time

from nanovisor.network import nsutil


def sh(*cmd: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def in_ns(netns: str, *cmd: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return sh("nsenter", f"--net={netns}", *cmd, timeout=timeout)


def fetch(url: str, netns: str | None = None) -> str:
    """HTTP GET with busybox wget (its -T flag crashes, so `timeout` bounds it)."""
    cmd = ("timeout", "5", "busybox", "wget", "-qO-", url)
    r = in_ns(netns, *cmd) if netns else sh(*cmd)
    return r.stdout if r.returncode == 0 else f"ERROR {r.returncode}: {r.stderr.strip()}"


def _wait_port(port: int) -> None:
    import socket
    for _ in range(500):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)


class Httpd:
    """busybox httpd serving a directory inside a namespace; stopped by pid."""

    def __init__(self, netns: str, docroot, port: int = 80) -> None:
        self.proc = subprocess.Popen(["nsenter", f"--net={netns}", "busybox", "httpd", "-f", "-p", str(port),
                                      "-h", str(docroot)])
        nsutil.in_netns(netns, lambda: _wait_port(port))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
