"""A tree 1,100 levels deep (past Python's recursion limit) made inside a container survives every walk:
commit, cp out and in, save/load, rm (the container could once not be removed)."""

from __future__ import annotations

import os
import uuid

from nanovisor.rmtree import remove_tree

DEPTH = 1100
MAKE_DEEP = f'i=0; while [ $i -lt {DEPTH} ]; do mkdir d; cd d; i=$((i+1)); done; echo bottom > f'


def _deep_host_tree(top) -> None:
    os.mkdir(top)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(DEPTH):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
            f.write("host-bottom\n")
    finally:
        os.close(fd)


def test_deep_tree_commit_cp_save_load_rm(docker, image, name, tmp_path):
    tag = f"deep-{uuid.uuid4().hex[:8]}"
    r = docker("run", "--name", name, image, "sh", "-c", MAKE_DEEP)
    assert r.returncode == 0, r.stderr
    try:
        r = docker("commit", name, tag)
        assert r.returncode == 0, r.stderr
        out = tmp_path / "out"
        out.mkdir()
        r = docker("cp", f"{name}:/d", str(out))
        assert r.returncode == 0, r.stderr
        assert open(str(out) + "/d" * DEPTH + "/f").read() == "bottom\n"
        _deep_host_tree(tmp_path / "in")
        r = docker("cp", str(tmp_path / "in"), f"{name}:/in")
        assert r.returncode == 0, r.stderr
        r = docker("cp", f"{name}:/in/" + "d/" * DEPTH + "f", str(tmp_path / "back"))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "back").read_text() == "host-bottom\n"
        saved = tmp_path / "img.tar"
        r = docker("save", "-o", str(saved), tag)
        assert r.returncode == 0, r.stderr
        assert docker("rmi", tag).returncode == 0
        r = docker("load", "-i", str(saved))
        assert r.returncode == 0 and tag in r.stdout, r.stderr
        r = docker("run", "--rm", tag, "sh", "-c", "cat /" + "d/" * DEPTH + "f")
        assert r.stdout == "bottom\n", r.stderr
    finally:
        r = docker("rm", "-f", name)
        docker("rmi", tag)
        for d in ("in", "out"):  # pytest's own tmp_path cleanup recurses
            remove_tree(tmp_path / d)
    assert r.returncode == 0, r.stderr
    assert name not in docker("ps", "-a", "--format", "{{.Names}}").stdout


def test_deep_build_context_copies(docker_env, docker, tmp_path):
    """The builder walks a context 1,100 levels deep (COPY) without recursion."""
    import subprocess

    tag = f"deepctx-{uuid.uuid4().hex[:8]}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM nano/busybox\nCOPY in /in\n")
    _deep_host_tree(ctx / "in")
    try:
        r = subprocess.run(["docker", "build", "-q", "-t", tag, str(ctx)], env={**docker_env, "DOCKER_BUILDKIT": "0"},
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        r = docker("run", "--rm", tag, "cat", "/in/" + "d/" * DEPTH + "f")
        assert r.stdout == "host-bottom\n", r.stderr
    finally:
        docker("rmi", tag)
        remove_tree(ctx)
