"""`docker cp` both ways, the path-stat header, and `docker export`."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import tarfile

from apihelpers import api_request


def test_cp_into_and_out_of_a_container(docker, running, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_text("copied in\n")
    r = docker("cp", str(src), f"{running}:/tmp/hello.txt")
    assert r.returncode == 0, r.stderr
    assert docker("exec", running, "cat", "/tmp/hello.txt").stdout == "copied in\n"

    assert docker("exec", running, "sh", "-c", "mkdir -p /out/sub && echo deep > /out/sub/f").returncode == 0
    r = docker("cp", f"{running}:/out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "sub" / "f").read_text() == "deep\n"


def test_cp_missing_path(docker, running, tmp_path):
    r = docker("cp", f"{running}:/no/such/file", str(tmp_path / "x"))
    assert r.returncode == 1
    assert "Could not find the file /no/such/file in container" in r.stderr


def test_archive_head_stat_header(api_socket, running):
    status, headers, _ = api_request(api_socket, "HEAD", f"/containers/{running}/archive?path=/bin")
    assert status == 200
    stat = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
    assert stat["name"] == "bin"
    assert stat["mode"] & (1 << 31)  # Go's os.ModeDir


def test_docker_py_put_and_get_archive(client, running):
    c = client.containers.get(running)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"x" * 100_000
        info = tarfile.TarInfo("big.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert c.put_archive("/tmp", buf.getvalue())
    chunks, stat = c.get_archive("/tmp/big.bin")
    assert stat["size"] == 100_000
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        assert tar.extractfile("big.bin").read() == b"x" * 100_000


def test_export_is_a_rootfs_tar(docker_env, running):
    out = subprocess.run(["docker", "export", running], env=docker_env, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    names = tarfile.open(fileobj=io.BytesIO(out.stdout)).getnames()
    assert any(n.lstrip("./") == "bin/busybox" for n in names)
