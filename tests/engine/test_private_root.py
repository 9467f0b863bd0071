"""Local root through the data root (CVE-2021-41091 in Docker): an unprivileged host user must not reach an
image layer, a container's tree or the database. The probes run as `nobody` (setpriv), the way an attacker
with a shell on the host would try them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from nvtest import IMAGE, run_cli

from nanovisor.paths import Paths
from nanovisor.store.db import Database

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


def as_nobody(*cmd: str) -> subprocess.CompletedProcess:
    """cmd run by a shell that already is nobody (setpriv opens its program before it drops root, so it
    would reach a path nobody cannot)."""
    return subprocess.run([*NOBODY, "sh", "-c", 'exec "$@"', "sh", *cmd], capture_output=True, text=True,
                          timeout=30)


def _inspect(nv, *args: str) -> dict:
    return json.loads(nv("inspect", *args, check=True).stdout)[0]


@pytest.fixture
def open_root(fresh_root):
    """A fresh root whose ancestors others may traverse (the session's tmp dir is 0700 and would hide
    everything by itself), with nano/busybox built; a world-readable control file beside it shows that the
    probes do reach what is not protected."""
    parents = [p for p in fresh_root.parents if p != Path("/") and stat.S_IMODE(p.stat().st_mode) == 0o700]
    for p in parents:
        os.chmod(p, 0o711)
    os.chmod(fresh_root, 0o755)  # as /var/lib/nanovisor would be made under umask 022 (mkdtemp made it 0700)
    control = fresh_root.parent / f"{fresh_root.name}-control"
    control.write_text("readable\n")
    try:
        run_cli(fresh_root, "nano", "build", "busybox", check=True, timeout=300)
        assert as_nobody("cat", str(control)).stdout == "readable\n"
        yield fresh_root
    finally:
        control.unlink()
        for p in parents:
            os.chmod(p, 0o700)


def test_unprivileged_user_reaches_no_layer_container_or_database(open_root):
    root = open_root

    def nv(*args: str, **kw) -> subprocess.CompletedProcess:
        return run_cli(root, *args, **kw)

    nv("run", "-d", "--name", "priv-probe", IMAGE, "sh", "-c",
       "cp /bin/busybox /suid && chmod 4755 /suid && touch /ready && sleep 300", check=True)
    try:
        merged = Path(_inspect(nv, "priv-probe")["GraphDriver"]["Data"]["MergedDir"])
        for _ in range(200):
            if (merged / "ready").exists():
                break
            subprocess.run(["sleep", "0.05"])
        nv("commit", "priv-probe", "priv-probe-img", check=True)
        layer = Path(_inspect(nv, "--type", "image", "priv-probe-img")["GraphDriver"]["Data"]["UpperDir"])
        suid_in_layer, suid_in_tree = layer / "suid", merged / "suid"
        for f in (suid_in_layer, suid_in_tree):  # root sees the setuid binary: the probes below are real
            assert os.stat(f).st_mode & stat.S_ISUID

        for f in (suid_in_layer, suid_in_tree):
            probe = as_nobody(str(f), "id", "-u")
            assert probe.returncode != 0 and "Permission denied" in probe.stderr, probe
        probe = as_nobody("sh", "-c", f"echo pwned > {merged}/tmp/pwned")
        assert probe.returncode != 0 and "Permission denied" in probe.stderr
        assert not (merged / "tmp" / "pwned").exists()
        paths = Paths.for_root(root)
        db = Database(paths.db)  # an open connection keeps the WAL in place
        db.query("SELECT count(*) FROM containers")
        for f in (paths.db, Path(f"{paths.db}-wal")):
            assert f.exists()
            probe = as_nobody("cat", str(f))
            assert probe.returncode != 0 and "Permission denied" in probe.stderr
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
        for d in (root, paths.run):
            assert as_nobody("ls", str(d)).returncode != 0
        db.close()
        assert stat.S_IMODE(os.stat(layer.parent).st_mode) == 0o700  # <layer>/diff is the image root (0755)
    finally:
        nv("rm", "-f", "priv-probe")


def test_existing_root_gets_its_modes_fixed_on_open(fresh_root):
    """A root an older version made 0755 all the way down (and a world-readable database) is locked down
    the first time this version opens it."""
    run_cli(fresh_root, "ps", check=True)
    paths = Paths.for_root(fresh_root)
    modes = paths.private_modes()
    for d in modes:
        if d != Path("/run/nanovisor"):
            os.chmod(d, 0o755)
    for f in fresh_root.glob("nanovisor.db*"):
        os.chmod(f, 0o644)
    run_cli(fresh_root, "ps", check=True)
    for d, mode in modes.items():
        assert stat.S_IMODE(os.stat(d).st_mode) == mode, d
    assert stat.S_IMODE(os.stat(fresh_root).st_mode) == 0o710
    for name in ("layers", "containers", "volumes"):
        assert stat.S_IMODE(os.stat(fresh_root / name).st_mode) in (0o700, 0o710)
    for f in fresh_root.glob("nanovisor.db*"):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
