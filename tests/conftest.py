"""Fixtures shared by every test package: a scratch engine root with nano/busybox built once, and the
embedded `nanovisor` CLI run as a user would run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

IMAGE = "nano/busybox"

# Tests never reach off the machine: no outbound masquerading, no DNS forwarding upstream.
os.environ["NANOVISOR_NET_OUTBOUND"] = "0"
os.environ["NANOVISOR_DNS_FORWARD"] = "0"


def run_cli(root: Path, *args: str, input: str | bytes | None = None, timeout: float = 120,
            check: bool = False, text: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), *args], input=input,
                          capture_output=True, text=text, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"nanovisor {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def cleanup_root(root: Path) -> None:
    """Removes every container (stopping it, by the engine's own rm -f), then the root."""
    if not (root / "nanovisor.db").exists():
        shutil.rmtree(root, ignore_errors=True)
        return
    ids = run_cli(root, "ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        run_cli(root, "rm", "-f", "-v", *ids, timeout=300)
    teardown_runtime_state(root)
    for m in reversed(mounts_under(root)):
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def teardown_runtime_state(root: Path) -> None:
    """Bridges, nftables table, netns mounts, helper processes and /run state of a root: gone."""
    from nanovisor.network.manager import NetworkManager
    from nanovisor.paths import Paths
    from nanovisor.store.db import Database

    paths = Paths.for_root(root)
    NetworkManager(paths, Database(paths.db)).teardown()
    for m in reversed(mounts_under(paths.run)):
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(paths.run, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_layer_root():
    """One root with nano/busybox built: later roots copy nothing, they rebuild (deterministic, ~1 s)."""
    root = Path(tempfile.mkdtemp(prefix="nv-test-root-"))
    run_cli(root, "nano", "build", "busybox", check=True, timeout=300)
    yield root
    cleanup_root(root)


@pytest.fixture(scope="session")
def root(busybox_layer_root) -> Path:
    """The shared scratch root for embedded-CLI tests (tests name or remove their containers)."""
    return busybox_layer_root


@pytest.fixture
def nv(root):
    """nv("run", "--rm", IMAGE, "echo", "hi") → CompletedProcess (text)."""
    def call(*args: str, **kw) -> subprocess.CompletedProcess:
        return run_cli(root, *args, **kw)
    return call


@pytest.fixture
def fresh_root():
    """An empty root of its own, removed afterwards with everything in it."""
    root = Path(tempfile.mkdtemp(prefix="nv-test-fresh-"))
    yield root
    cleanup_root(root)


def pytest_report_header(config):
    return f"nanovisor tests: python {sys.version.split()[0]}, uid {os.getuid()}"
