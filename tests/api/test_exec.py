"""`docker exec` and docker-py exec_run: output, exit codes, stdin, detach, inspect, errors."""

from __future__ import annotations

import time


def test_exec_output_and_exit_code(docker, running):
    r = docker("exec", running, "sh", "-c", "echo in-container; echo oops >&2; exit 7")
    assert r.returncode == 7
    assert r.stdout == "in-container\n"
    assert r.stderr == "oops\n"


def test_exec_with_stdin(docker, running):
    r = docker("exec", "-i", running, "sh", "-c", "cat; echo done", input="piped\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "piped\ndone\n"


def test_exec_env_and_workdir(docker, running):
    r = docker("exec", "-e", "FOO=bar", "-w", "/tmp", running, "sh", "-c", 'echo "$FOO $(pwd)"')
    assert r.stdout == "bar /tmp\n"


def test_exec_detached(docker, client, running):
    assert docker("exec", "-d", running, "sh", "-c", "echo written > /tmp/detached").returncode == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = docker("exec", running, "cat", "/tmp/detached")
        if r.returncode == 0:
            break
        time.sleep(0.2)
    assert r.stdout == "written\n"


def test_exec_in_stopped_container(docker, image, name):
    assert docker("create", "--name", name, image, "true").returncode == 0
    try:
        r = docker("exec", name, "true")
        assert r.returncode == 1
        assert "is not running" in r.stderr
    finally:
        docker("rm", name)


def test_docker_py_exec_run_demux_and_inspect(client, running):
    c = client.containers.get(running)
    code, (out, err) = c.exec_run(["sh", "-c", "echo o; echo e >&2; exit 2"], demux=True)
    assert code == 2
    assert out == b"o\n" and err == b"e\n"
    api = client.api
    ex = api.exec_create(c.id, ["sh", "-c", "exit 5"])
    api.exec_start(ex["Id"])
    info = api.exec_inspect(ex["Id"])
    assert info["ExitCode"] == 5 and info["Running"] is False


def test_unknown_exec_instance(client):
    import docker as dockerpy
    import pytest

    with pytest.raises(dockerpy.errors.NotFound, match="No such exec instance: deadbeef"):
        client.api.exec_inspect("deadbeef")
