"""Fixtures shared by every test package: a scratch engine root with nano/busybox built once, and the
embedded `nanovisor` CLI run as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from nvtest import IMAGE, cleanup_root, run_cli  # noqa: F401  (re-exported for old imports)


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
