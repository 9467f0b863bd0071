"""Network tests run each test body on a thread that unshared its own network namespace: bridges, veths,
nftables tables and traffic never touch the host's namespace, and everything a subprocess or netd started
from that thread sees is the private one. The engine root is a tmp dir; teardown runs in the same thread."""

from __future__ import annotations

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
