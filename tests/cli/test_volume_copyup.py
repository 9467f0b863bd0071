"""A new volume starts with the image's files at its mount point — and only the image's, never the host's."""

from __future__ import annotations

import json
from pathlib import Path

from nvtest import IMAGE


def test_new_volume_gets_image_content_resolved_inside_the_rootfs(nv, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {IMAGE}\n"
        "RUN mkdir /seeded && echo seed > /seeded/f && ln -s /etc /evil\n"
        "VOLUME /seeded\n")
    r = nv("build", "-q", "-t", "copyup:test", str(tmp_path))
    assert r.returncode == 0, r.stderr
    try:
        r = nv("run", "--rm", "copyup:test", "cat", "/seeded/f")
        assert (r.returncode, r.stdout) == (0, "seed\n"), r.stderr
        # a volume mounted over an absolute symlink: the copy follows it inside the image, not on the host
        r = nv("run", "--rm", "-v", "copyup-evil:/evil", "copyup:test", "true")
        assert r.returncode == 0, r.stderr
        mp = Path(json.loads(nv("volume", "inspect", "copyup-evil").stdout)[0]["Mountpoint"])
        passwd = (mp / "passwd").read_text() if (mp / "passwd").exists() else ""
        host_passwd = Path("/etc/passwd").read_text()
        assert passwd != host_passwd
        assert not (mp / "os-release").exists() or (mp / "os-release").read_text() != \
            Path("/etc/os-release").read_text()
    finally:
        nv("volume", "rm", "copyup-evil")
        nv("rmi", "copyup:test")
