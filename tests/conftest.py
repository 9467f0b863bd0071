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
from nvtest import IMAGE, cleanup_root, mounts_under, run_cli  # noqa: F401  (re-exported for old imports)


@pytest.fixture(scope="session", autouse=True)
def no_runtime_state_left_behind():
    """Every engine root a test makes gets a /run/nanovisor/r-<hash> dir (netns mounts, locks, exits):
    whatever the session added there is unmounted and removed at its end, whichever test made it."""
    from nanovisor.paths import DEFAULT_RUN

    before = set(DEFAULT_RUN.glob("r-*")) if DEFAULT_RUN.exists() else set()
    yield
    for run_dir in sorted(set(DEFAULT_RUN.glob("r-*")) - before):
        for m in reversed(mounts_under(run_dir)):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)


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
