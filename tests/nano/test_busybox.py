"""nano/busybox: built from the Debian package, identical on every rebuild, and it runs under runc."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from nanohelpers import make_store

from nanovisor.nano.busybox import DEFAULT_REF, build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    store = make_store(tmp_path_factory.mktemp("nano") / "root")
    return store, build(store)


def test_rebuild_in_another_root_gives_the_same_image(built, tmp_path: Path):
    store, image = built
    again = build(make_store(tmp_path / "other"))
    assert again.id == image.id and again.diff_ids == image.diff_ids
    assert build(store).id == image.id  # rebuilding in place changes nothing either


def test_image_content_and_config(built):
    store, image = built
    assert image.repo_tags == [DEFAULT_REF]
    cfg = image.config
    assert (cfg["architecture"], cfg["os"]) == ("amd64", "linux")
    assert cfg["config"]["Cmd"] == ["sh"]
    assert cfg["config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert cfg["config"]["Labels"]["org.nanovisor.nano.package"] == "busybox-static"
    assert cfg["history"][0]["created_by"].startswith("nanovisor nano build busybox")
    [diff] = store.layer_dirs(image)
    assert os.readlink(diff / "bin/sh") == "/bin/busybox"
    assert (diff / "usr/bin/awk").is_symlink()
    assert "nano:x:1000:1000:" in (diff / "etc/passwd").read_text()
    assert oct(os.stat(diff / "tmp").st_mode & 0o7777) == "0o1777"
    for d in ("proc", "sys", "dev", "root", "home", "var"):
        assert (diff / d).is_dir()
    assert not (diff / "etc/hosts").exists() and not (diff / "etc/resolv.conf").exists()


def _run_in_runc(rootfs_src: Path, tmp_path: Path, args: list[str], uid: int = 0) -> str:
    bundle = tmp_path / "bundle"
    bundle.mkdir(parents=True)
    subprocess.run(["cp", "-a", f"{rootfs_src}/.", str(bundle / "rootfs")], check=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["process"]["user"] = {"uid": uid, "gid": uid}
    (bundle / "config.json").write_text(json.dumps(spec))
    state = tmp_path / "runc-state"
    cid = "nvtest-" + uuid.uuid4().hex[:12]
    try:
        proc = subprocess.run(["runc", "--root", str(state), "run", "-b", str(bundle), cid],
                              capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["runc", "--root", str(state), "delete", "-f", cid], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed")
def test_runs_under_runc(built, tmp_path: Path):
    store, image = built
    [diff] = store.layer_dirs(image)
    assert _run_in_runc(diff, tmp_path / "a", ["echo", "hi"]) == "hi\n"
    assert _run_in_runc(diff, tmp_path / "b", ["sh", "-c", "id -un; ls /usr/bin/wget"], uid=1000) == \
        "nano\n/usr/bin/wget\n"
