"""Volumes (create, use, ls, inspect, rm, prune) and the built-in networks."""

from __future__ import annotations

import uuid


def test_volume_lifecycle_and_use(docker, image):
    vol = "vol-" + uuid.uuid4().hex[:8]
    assert docker("volume", "create", vol).stdout.strip() == vol
    try:
        assert vol in docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
        assert docker("volume", "inspect", "--format", "{{.Driver}}", vol).stdout.strip() == "local"
        w = docker("run", "--rm", "-v", f"{vol}:/data", image, "sh", "-c", "echo kept > /data/f")
        assert w.returncode == 0, w.stderr
        r = docker("run", "--rm", "-v", f"{vol}:/data", image, "cat", "/data/f")
        assert r.stdout == "kept\n"
    finally:
        assert docker("volume", "rm", vol).returncode == 0
    r = docker("volume", "inspect", vol)
    assert r.returncode == 1
    assert "no such volume" in r.stderr


def test_volume_made_beforehand_is_filled_from_the_image(docker, image, tmp_path):
    """As dockerd: an empty volume, also one made by `volume create` (as compose makes its volumes), gets the
    image's content at the mount point and that directory's owner and mode; one with content is left alone."""
    tag = "copyup-" + uuid.uuid4().hex[:8]
    vol = "vol-" + uuid.uuid4().hex[:8]
    (tmp_path / "Dockerfile").write_text(f"FROM {image}\nRUN mkdir /d && echo seed > /d/f && "
                                         "chown -R 1234:1234 /d && chmod 700 /d\n")
    built = docker("build", "-q", "-t", tag, str(tmp_path))
    assert built.returncode == 0, built.stderr
    assert docker("volume", "create", vol).returncode == 0
    try:
        r = docker("run", "--rm", "-v", f"{vol}:/d", tag, "sh", "-c", "stat -c '%u %a' /d; cat /d/f; echo mine > /d/f")
        assert r.stdout.split() == ["1234", "700", "seed"], r.stderr
        r = docker("run", "--rm", "-v", f"{vol}:/d", tag, "cat", "/d/f")
        assert r.stdout == "mine\n", r.stderr
    finally:
        docker("volume", "rm", vol)
        docker("rmi", tag)


def test_volume_prune(docker):
    vol = "vol-" + uuid.uuid4().hex[:8]
    assert docker("volume", "create", vol).returncode == 0
    r = docker("volume", "prune", "-a", "-f")
    assert r.returncode == 0, r.stderr
    assert vol in r.stdout
    assert vol not in docker("volume", "ls", "-q").stdout.split()


def test_docker_py_volumes(client):
    v = client.volumes.create(name="vol-" + uuid.uuid4().hex[:8], labels={"k": "v"})
    assert client.volumes.get(v.name).attrs["Labels"] == {"k": "v"}
    assert any(x.name == v.name for x in client.volumes.list(filters={"label": "k=v"}))
    v.remove()


def test_builtin_networks(docker, client):
    names = docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert {"bridge", "host", "none"} <= set(names)
    assert docker("network", "inspect", "--format", "{{.Driver}}", "host").stdout.strip() == "host"
    assert client.networks.get("bridge").attrs["Driver"] == "bridge"
