"""`docker load` of a hostile archive through the real server: a ~1 MB gzip that unpacks to ~900 MB of
JSON-looking members is refused without the daemon's memory following it (peak RSS read from /proc)."""

from __future__ import annotations

import gzip
import shutil
import tarfile
import tempfile
from pathlib import Path

from apihelpers import ServeProcess, docker_cli

PEAK_GROWTH_MB = 200   # a correctness bound (the unbounded reader took ~900 MB more), not a timing


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _json_bomb(path: Path, members: int = 14, member_mb: int = 64) -> None:
    """A tar of members x member_mb MB JSON-looking files, gzip-compressed as concatenated gzip members
    (valid gzip; built from one compressed megabyte of spaces so it takes no time to write)."""
    mb_of_spaces = gzip.compress(b" " * (1 << 20), compresslevel=9)
    with open(path, "wb") as out:
        for i in range(members):
            ti = tarfile.TarInfo(f"blobs/sha256/{i:064x}.json")
            ti.size = member_mb << 20
            out.write(gzip.compress(ti.tobuf(format=tarfile.USTAR_FORMAT) + b"{" + b" " * ((1 << 20) - 1)))
            for _ in range(member_mb - 1):
                out.write(mb_of_spaces)
        out.write(gzip.compress(b"\0" * 1024))


def test_hostile_archive_leaves_daemon_memory_flat(nv_root, docker_env, image):
    tmp = Path(tempfile.mkdtemp(prefix="nv-load-bounds-"))
    sock = tmp / "docker.sock"
    server = ServeProcess(nv_root, [f"unix://{sock}"], tmp / "serve.log")
    docker = docker_cli({**docker_env, "DOCKER_HOST": f"unix://{sock}"}, timeout=300)

    try:
        server.wait_ready(sock=str(sock))
        # warm up the whole load path with a real archive first: imports, threads, buffers
        saved = tmp / "busybox.tar"
        assert docker("save", "-o", str(saved), image).returncode == 0
        r = docker("load", "-i", str(saved))
        assert r.returncode == 0, r.stderr
        before = _peak_rss_mb(server.proc.pid)

        bomb = tmp / "bomb.tar.gz"
        _json_bomb(bomb)
        assert bomb.stat().st_size < 2 << 20
        r = docker("load", "-i", str(bomb))
        assert r.returncode != 0
        assert "too large" in r.stderr, r.stderr
        grown = _peak_rss_mb(server.proc.pid) - before
        assert grown < PEAK_GROWTH_MB, f"serve's peak RSS grew by {grown:.0f} MB"
        assert docker("image", "inspect", image).returncode == 0  # still serving
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
