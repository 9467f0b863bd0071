"""docker cp into and out of volumes and bind mounts (read-only ones refused with dockerd's words), a single-file
bind, a volume subpath, tmpfs options: through the real docker CLI and docker-py, in both isolations."""

from __future__ import annotations

import io
import tarfile

import docker as dockerpy
import pytest

ISOLATIONS = [pytest.param("process", id="process"), pytest.param("vm", id="vm", marks=pytest.mark.vm)]


def test_cp_reads_and_writes_volumes_and_binds(docker, client, image, name, tmp_path):
    bind = tmp_path / "bind"
    bind.mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    vol = f"cpvol-{name[-6:]}"
    r = docker("run", "-d", "--name", name, "-v", f"{vol}:/vol", "-v", f"{bind}:/bind", "-v", f"{ro}:/ro:ro",
               image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        src = tmp_path / "in.txt"
        src.write_text("into the volume\n")
        assert docker("cp", str(src), f"{name}:/vol/in.txt").returncode == 0
        assert docker("exec", name, "cat", "/vol/in.txt").stdout == "into the volume\n"
        assert docker("cp", str(src), f"{name}:/bind/in.txt").returncode == 0
        assert (bind / "in.txt").read_text() == "into the volume\n"
        docker("exec", name, "sh", "-c", "echo made inside > /vol/out.txt")
        dest = tmp_path / "out"
        dest.mkdir()
        assert docker("cp", f"{name}:/vol/out.txt", str(dest)).returncode == 0
        assert (dest / "out.txt").read_text() == "made inside\n"
        refused = docker("cp", str(src), f"{name}:/ro/in.txt")
        assert refused.returncode != 0 and "mounted volume is marked read-only" in refused.stderr
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as t:
            info = tarfile.TarInfo("x")
            info.size = 1
            t.addfile(info, io.BytesIO(b"x"))
        with pytest.raises(dockerpy.errors.APIError) as err:
            client.containers.get(name).put_archive("/ro", data.getvalue())
        assert err.value.status_code == 400
        assert not (ro / "in.txt").exists() and not (ro / "x").exists()
    finally:
        docker("rm", "-f", "-v", name)
        docker("volume", "rm", vol)


@pytest.mark.parametrize("iso", ISOLATIONS)
def test_single_file_bind_subpath_and_tmpfs_options(docker, image, tmp_path, iso):
    single = tmp_path / "single.conf"
    single.write_text("one file\n")
    vol = f"subvol-{iso}-{tmp_path.name[-6:]}"
    docker("volume", "create", vol)
    try:
        seed = docker("run", "--rm", "-v", f"{vol}:/v", image, "sh", "-c", "mkdir -p /v/app && echo sub > /v/app/f")
        assert seed.returncode == 0, seed.stderr
        r = docker("run", "--rm", f"--isolation={iso}", "-v", f"{single}:/etc/app.conf:ro",
                   "--mount", f"type=volume,src={vol},dst=/data,volume-subpath=app",
                   "--tmpfs", "/scratch:size=1m,mode=1777",
                   "--mount", "type=tmpfs,dst=/private,tmpfs-size=2m,tmpfs-mode=700",
                   image, "sh", "-c", "cat /etc/app.conf /data/f; ls /data; stat -c %a /scratch /private;"
                                      "df -k /scratch /private | tail -2 | awk '{print $2}'")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["one", "file", "sub", "f", "1777", "700", "1024", "2048"]
        missing = docker("run", "--rm", f"--isolation={iso}", "--mount",
                         f"type=volume,src={vol},dst=/data,volume-subpath=nosuch", image, "true")
        assert missing.returncode != 0 and "nosuch" in missing.stderr
        escape = docker("run", "--rm", "--mount", f"type=volume,src={vol},dst=/data,volume-subpath=../..", image,
                        "true")
        assert escape.returncode != 0 and "subpath" in escape.stderr
    finally:
        docker("volume", "rm", vol)
