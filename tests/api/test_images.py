"""Images through the docker CLI and docker-py: list, inspect, history, tag, rmi, save/load, import, prune,
and the message a user gets when a pull is needed."""

from __future__ import annotations

import subprocess

from apihelpers import free_port


def test_images_lists_the_base_image(docker, image):
    r = docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert r.returncode == 0, r.stderr
    assert f"{image}:latest" in r.stdout.split()


def test_inspect_and_history(docker, image):
    iid = docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    assert iid.startswith("sha256:")
    h = docker("history", image)
    assert h.returncode == 0, h.stderr
    assert "IMAGE" in h.stdout.splitlines()[0]


def test_tag_and_remove(docker, image):
    assert docker("tag", image, "nano/tagged:v1").returncode == 0
    assert "nano/tagged:v1" in docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    r = docker("rmi", "nano/tagged:v1")
    assert r.returncode == 0, r.stderr
    assert "Untagged: nano/tagged:v1" in r.stdout
    assert docker("image", "inspect", image).returncode == 0  # the original tag stays


def test_unknown_image_errors(docker):
    r = docker("rmi", "nano/never-was")
    assert r.returncode == 1
    assert "No such image: nano/never-was" in r.stderr
    r = docker("image", "inspect", "nano/never-was")
    assert r.returncode == 1
    assert "No such image: nano/never-was" in r.stderr


def test_save_and_load_roundtrip(docker, image, tmp_path):
    assert docker("tag", image, "nano/saved:1").returncode == 0
    archive = tmp_path / "saved.tar"
    r = docker("save", "-o", str(archive), "nano/saved:1")
    assert r.returncode == 0, r.stderr
    assert archive.stat().st_size > 0
    assert docker("rmi", "nano/saved:1").returncode == 0
    r = docker("load", "-i", str(archive))
    assert r.returncode == 0, r.stderr
    assert "Loaded image: nano/saved:1" in r.stdout
    assert docker("run", "--rm", "nano/saved:1", "echo", "loaded").stdout == "loaded\n"
    docker("rmi", "nano/saved:1")


def test_import_from_export(docker_env, docker, running):
    export = subprocess.run(["docker", "export", running], env=docker_env, capture_output=True, timeout=120)
    assert export.returncode == 0
    imp = subprocess.run(["docker", "import", "-", "nano/imported:1"], input=export.stdout, env=docker_env,
                         capture_output=True, timeout=120)
    assert imp.returncode == 0, imp.stderr
    assert imp.stdout.decode().strip().startswith("sha256:")
    assert docker("run", "--rm", "nano/imported:1", "echo", "imported").stdout == "imported\n"
    docker("rmi", "nano/imported:1")


def test_pull_failure_is_reported(docker):
    """A registry on a closed loopback port: the pull fails in-stream and the CLI prints why."""
    ref = f"127.0.0.1:{free_port()}/nano/not-here"
    r = docker("pull", ref)
    assert r.returncode == 1
    assert "127.0.0.1" in r.stderr


def test_image_prune(docker):
    r = docker("image", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert "Total reclaimed space" in r.stdout


def test_docker_py_images(client, image):
    img = client.images.get(image)
    assert f"{image}:latest" in img.tags
    assert any(f"{image}:latest" in i.tags for i in client.images.list())
    data = b"".join(img.save())
    loaded = client.images.load(data)
    assert loaded and loaded[0].id == img.id
