"""Helpers shared by the test packages (a module, not a conftest: several conftest.py files coexist)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

IMAGE = "nano/busybox"

# Tests never reach off the machine: no outbound masquerading, no DNS forwarding upstream.
os.environ["NANOVISOR_NET_OUTBOUND"] = "0"
os.environ["NANOVISOR_DNS_FORWARD"] = "0"


def runtime_params() -> list:
    """One pytest param per registered runtime (the conformance style: the same check in every isolation):
    VM runtimes carry the `vm` mark (slow under TCG); one that is not installed, or that this host's layout
    makes refuse, is skipped with the reason."""
    import pytest

    from nanovisor.runtime.registry import RuntimeRegistry

    params = []
    for name, rt in RuntimeRegistry(Path("/nonexistent")).runtimes.items():
        marks = [pytest.mark.vm] if rt.isolation == "vm" else []
        if not rt.available():
            marks.append(pytest.mark.skip(reason=f"{name} is not installed"))
        elif reason := rt.unsupported_reason():
            marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


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
    from nanovisor.rmtree import remove_tree  # a test may leave a tree deeper than shutil.rmtree can recurse

    if not (root / "nanovisor.db").exists():
        remove_tree(root)
        return
    ids = run_cli(root, "ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        run_cli(root, "rm", "-f", "-v", *ids, timeout=300)
    teardown_runtime_state(root)
    for m in reversed(mounts_under(root)):
        subprocess.run(["umount", "-l", m], capture_output=True)
    remove_tree(root)


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


def pty_session(root: Path, args: list[str], inputs: list[bytes], timeout: float = 90) -> tuple[bytes, int]:
    """Runs `nanovisor ARGS` on a real pty, typing each input once the program has printed something (and
    at most every 0.8 s); returns what it printed and its exit code."""
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "nanovisor", "--root", str(root), *args])
    out, pending, last = b"", list(inputs), 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
        if pending and out and time.monotonic() - last > 0.8:
            os.write(fd, pending.pop(0))
            last = time.monotonic()
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


def wait_for(pred, timeout: float = 30.0) -> None:
    """Polls pred until true; fails the test after timeout (a bound on waiting, not a speed check)."""
    import time

    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    pytest.fail("condition not met in time")
