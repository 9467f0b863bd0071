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

# Every scratch root, socket and tmp_path of this session lives below one directory of its own, so that the
# runtime state it leaves under /run can be told apart from that of another test run on the same machine.
SESSION_TMP = tempfile.mkdtemp(prefix="nvtest-")
tempfile.tempdir = SESSION_TMP
os.environ["TMPDIR"] = SESSION_TMP

from nvtest import IMAGE, cleanup_root, mounts_under, run_cli  # noqa: F401, E402  (re-exported for old imports)


@pytest.fixture(scope="session", autouse=True)
def no_runtime_state_left_behind():
    """Every engine root a test makes gets a /run/nanovisor/r-<hash> dir (netns mounts, locks, exits):
    whatever this session's roots left there is unmounted and removed at its end, whichever test made it
    (another test run's state on the same machine is left alone)."""
    from nanovisor.paths import DEFAULT_RUN

    yield
    for run_dir in sorted(DEFAULT_RUN.glob("r-*")) if DEFAULT_RUN.exists() else []:
        try:
            owner = (run_dir / "root").read_text()
        except OSError:
            continue
        if not owner.startswith(SESSION_TMP + "/"):
            continue
        for m in reversed(mounts_under(run_dir)):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(SESSION_TMP, ignore_errors=True)


def pytest_collection_finish(session):
    """With NANOVISOR_CHECK_COLLECTION=1 (the full suite, scripts/run-tests.sh): every tests/**/test_*.py
    must contribute at least one collected test, so no file is silently skipped (as `build/` once was)."""
    if os.environ.get("NANOVISOR_CHECK_COLLECTION") != "1":
        return
    tests_dir = Path(__file__).parent
    collected = {Path(str(item.path)).resolve() for item in session.items}
    missing = sorted(str(p.relative_to(tests_dir)) for p in tests_dir.rglob("test_*.py")
                     if p.resolve() not in collected)
    if missing:
        raise pytest.UsageError("test files that contribute no collected test: " + ", ".join(missing))


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
