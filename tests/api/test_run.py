"""`docker run` as a user types it: output, exit codes, stdin, --rm, errors for missing images and names."""

from __future__ import annotations

import pytest
from apihelpers import free_port


def test_run_prints_output(docker, image):
    r = docker("run", "--rm", image, "echo", "hello from nanovisor")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from nanovisor\n"


def test_run_exit_code(docker, image):
    assert docker("run", "--rm", image, "sh", "-c", "exit 3").returncode == 3


def test_run_keeps_stdout_and_stderr_apart(docker, image):
    r = docker("run", "--rm", image, "sh", "-c", "echo out; echo err >&2")
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"


def test_run_pipes_stdin_through_to_eof(docker, image):
    r = docker("run", "-i", "--rm", image, "sh", "-c", "cat; echo after-eof", input="line one\nline two\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "line one\nline two\nafter-eof\n"


def test_run_rm_removes_the_container(docker, image, name):
    assert docker("run", "--rm", "--name", name, image, "true").returncode == 0
    r = docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}")
    assert r.stdout.strip() == ""


def test_run_detached_prints_the_id(docker, image, name):
    r = docker("run", "-d", "--name", name, image, "true")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64
    assert docker("wait", name).stdout.strip() == "0"
    assert docker("inspect", "--format", "{{.Id}}", name).stdout.strip() == cid
    docker("rm", name)


def test_run_unknown_image_without_pull(docker):
    r = docker("run", "--rm", "--pull", "never", "nano/does-not-exist", "true")
    assert r.returncode == 125
    assert "Error response from daemon: No such image: nano/does-not-exist" in r.stderr


def test_run_unknown_image_tries_to_pull(docker):
    """The CLI pulls after a 404 on create; a registry on a closed loopback port keeps traffic local."""
    ref = f"127.0.0.1:{free_port()}/nano/absent"
    r = docker("run", "--rm", ref, "true")
    assert r.returncode == 125
    assert f"Unable to find image '{ref}:latest' locally" in r.stderr
    assert "127.0.0.1" in r.stderr.split("locally", 1)[1]


def test_name_conflict(docker, image, name):
    cid = docker("create", "--name", name, image, "true").stdout.strip()
    assert len(cid) == 64
    try:
        message = (f'Conflict. The container name "/{name}" is already in use by container "{cid}". '
                   "You have to remove (or rename) that container to be able to reuse that name.")
        r = docker("create", "--name", name, image, "true")
        assert r.returncode == 1  # the CLI's create exits 1 on daemon errors, run exits 125
        assert message in r.stderr
        r = docker("run", "--name", name, image, "true")
        assert r.returncode == 125
        assert message in r.stderr
    finally:
        docker("rm", name)


def test_docker_py_run(client, image):
    out = client.containers.run(image, ["sh", "-c", "echo py; echo pyerr >&2"], remove=True,
                                stdout=True, stderr=True)
    assert b"py\n" in out and b"pyerr\n" in out


def test_docker_py_nonzero_exit_raises(client, image):
    import docker as dockerpy

    with pytest.raises(dockerpy.errors.ContainerError) as e:
        client.containers.run(image, ["sh", "-c", "echo bad >&2; exit 4"], remove=True)
    assert e.value.exit_status == 4
    assert b"bad" in e.value.stderr
