"""Fixtures: registries (each started once per module, stopped by pid) and scratch engine roots."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from registryhelpers import USERS, Registry, TokenServer, make_ca_and_cert, make_htpasswd, open_store, rmtree


@pytest.fixture(autouse=True)
def docker_certs(tmp_path, monkeypatch):
    """Docker's certs.d as the registry code reads it: a scratch directory, never the machine's own."""
    d = tmp_path / "docker-certs.d"
    d.mkdir()
    monkeypatch.setenv("NANOVISOR_CERTS_D", str(d))
    return d


@pytest.fixture(scope="module")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="nv-registry-test-"))
    yield d
    rmtree(d)


@pytest.fixture(scope="module")
def plain_registry(workdir):
    reg = Registry(workdir / "plain")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def tls_registry(workdir):
    certs = make_ca_and_cert(workdir / "pki")
    reg = Registry(workdir / "tls", tls=(certs["cert"], certs["key"]))
    reg.ca = certs["ca"]
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def htpasswd_registry(workdir):
    reg = Registry(workdir / "htpasswd", htpasswd=make_htpasswd(workdir / "htpasswd.txt", USERS))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def token_server(workdir):
    server = TokenServer(workdir / "token", USERS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_registry(workdir, token_server):
    reg = Registry(workdir / "token-registry", token=token_server.registry_config())
    yield reg
    reg.stop()


def _cleanup_root(root: Path) -> None:
    if (root / "nanovisor.db").exists():
        ids = subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), "ps", "-aq", "--no-trunc"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), "rm", "-f", *ids],
                           capture_output=True)
    rmtree(root)


@pytest.fixture(scope="module")
def source_root():
    """A root with nano/busybox built into it: what gets pushed."""
    root = Path(tempfile.mkdtemp(prefix="nv-reg-src-"))
    subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), "nano", "build", "busybox"],
                   check=True, capture_output=True, timeout=300)
    yield root
    _cleanup_root(root)


@pytest.fixture(scope="module")
def source(source_root):
    return open_store(source_root)


@pytest.fixture
def fresh_store():
    """A store in an empty root of its own (and the root, for CLI use)."""
    root = Path(tempfile.mkdtemp(prefix="nv-reg-dst-"))
    store = open_store(root)
    store.root = root
    yield store
    store.db.close()
    _cleanup_root(root)
