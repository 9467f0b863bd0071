"""Attach beyond `run`: bulk output integrity, `docker start -a`, `docker attach`, detach keys, docker-py."""

from __future__ import annotations

import hashlib

from test_tty import Terminal


def test_bulk_output_arrives_intact(docker, image):
    r = docker("run", "--rm", image, "sh", "-c", "seq 1 200000")
    assert r.returncode == 0, r.stderr
    expected = "".join(f"{i}\n" for i in range(1, 200001))
    assert hashlib.sha256(r.stdout.encode()).hexdigest() == hashlib.sha256(expected.encode()).hexdigest()


def test_start_attach(docker, image, name):
    assert docker("create", "--name", name, image, "sh", "-c", "echo started; exit 2").returncode == 0
    try:
        r = docker("start", "-a", name)
        assert r.stdout == "started\n"
        assert r.returncode == 2
    finally:
        docker("rm", name)


def test_detach_keys_then_attach_again(docker_env, docker, image, name):
    t = Terminal(docker_env, "run", "-it", "--name", name, image, "sh")
    try:
        t.expect(b"# ")
        t.send(b"\x10\x11")  # ctrl-p ctrl-q
        assert t.wait() == 0
        assert docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true"
        t2 = Terminal(docker_env, "attach", name)
        t2.expect(b"# ")  # the attach's resize makes the shell redraw its prompt
        t2.send(b"echo back-$((40+2))\r")
        t2.expect(b"back-42")
        t2.send(b"exit 3\r")
        assert t2.wait() == 3
    finally:
        docker("rm", "-f", name)


def test_docker_py_attach_stream(client, image, name):
    c = client.containers.create(image, ["sh", "-c", "echo one; echo two >&2"], name=name)
    try:
        stream = c.attach(stdout=True, stderr=True, stream=True, logs=True)
        c.start()
        assert sorted(b"".join(stream).split()) == [b"one", b"two"]  # order across streams may vary
        assert sorted(c.logs().split()) == [b"one", b"two"]
    finally:
        c.remove(force=True)
