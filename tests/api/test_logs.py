"""`docker logs` options and stream separation, and docker-py's logs."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def finished(docker, image, name):
    """A container that printed 1..3 on stdout and 'warn' on stderr, then exited."""
    script = "echo 1; echo warn >&2; echo 2; echo 3"
    assert docker("run", "--name", name, image, "sh", "-c", script).returncode == 0
    yield name
    docker("rm", "-f", name)


def test_logs_split_streams(docker, finished):
    r = docker("logs", finished)
    assert r.stdout == "1\n2\n3\n"
    assert r.stderr == "warn\n"


def test_logs_tail(docker, image, name):
    # one stream only: how stdout and stderr lines interleave in the log is up to the pipes
    assert docker("run", "--name", name, image, "sh", "-c", "echo 1; echo 2; echo 3").returncode == 0
    try:
        assert docker("logs", "--tail", "1", name).stdout == "3\n"
        assert docker("logs", "--tail", "2", name).stdout == "2\n3\n"
        assert docker("logs", "--tail", "0", name).stdout == ""
    finally:
        docker("rm", name)


def test_logs_timestamps(docker, finished):
    lines = docker("logs", "-t", finished).stdout.splitlines()
    assert len(lines) == 3
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z [123]$", line) for line in lines), lines


def test_logs_since_and_until(docker, finished):
    assert docker("logs", "--since", "2099-01-01T00:00:00Z", finished).stdout == ""
    assert docker("logs", "--until", "2000-01-01T00:00:00Z", finished).stdout == ""
    assert docker("logs", "--since", "2000-01-01T00:00:00Z", finished).stdout == "1\n2\n3\n"


def test_logs_follow_ends_when_container_exits(docker, image, name):
    assert docker("run", "-d", "--name", name, image, "sh", "-c", "echo a; sleep 1; echo b").returncode == 0
    try:
        r = docker("logs", "-f", name)
        assert r.returncode == 0
        assert r.stdout == "a\nb\n"
    finally:
        docker("rm", "-f", name)


def test_logs_tty_container_is_raw(docker, image, name):
    assert docker("run", "-t", "--name", name, image, "sh", "-c", "echo tty-out").returncode == 0
    try:
        r = docker("logs", name)
        assert r.stdout.replace("\r\n", "\n") == "tty-out\n"
    finally:
        docker("rm", "-f", name)


def test_docker_py_logs(client, finished):
    c = client.containers.get(finished)
    assert c.logs(stdout=True, stderr=False) == b"1\n2\n3\n"
    assert c.logs(stdout=False, stderr=True) == b"warn\n"
    assert list(c.logs(stream=True, stderr=False)) and b"".join(c.logs(stream=True, stderr=False)) == \
        b"1\n2\n3\n"
