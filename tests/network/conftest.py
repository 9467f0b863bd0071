"""Network tests run each test body on a thread that unshared its own network namespace: bridges, veths,
nftables tables and traffic never touch the host's namespace, and everything a subprocess or netd started
from that thread sees is the private one. The engine root is a tmp dir; teardown runs in the same thread."""

from __future__ import annotations

import subprocess
import threading

import pytest

from nanovisor.network import NetworkManager, links, nsutil
from nanovisor.paths import Paths
from nanovisor.store.db import Database


@pytest.fixture
def mgr(tmp_path):
    paths = Paths.for_root(tmp_path / "root")
    paths.ensure()
    return NetworkManager(paths, Database(paths.db), outbound=False, dns_forward=False)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    box: dict = {}

    def body() -> None:
        try:
            nsutil.unshare(nsutil.CLONE_NEWNET)
            links.lo_up()
            try:
                pyfuncitem.obj(**args)
            finally:
                if "mgr" in args:
                    args["mgr"].teardown()
        except BaseException as e:  # noqa: B036 - re-raised on the main thread
            box["error"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return True


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
    import time
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
