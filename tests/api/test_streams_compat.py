"""Streams as clients expect them from dockerd: attach with logs and no stream returns, wait returns at an exit
that a restart policy follows with a restart, `run --rm` of a container that cannot start ends and removes it,
exec honours its DetachKeys."""

from __future__ import annotations

import json
import socket
import time

import pytest


def test_attach_logs_without_stream_returns_what_was_printed(client, image, name):
    c = client.containers.run(image, ["sh", "-c", "echo one; echo two >&2; sleep 600"], name=name, detach=True)
    try:
        deadline = time.monotonic() + 30
        while b"two" not in c.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        out = c.attach(stdout=True, stderr=True, stream=False, logs=True)
        assert out.replace(b"\r", b"") in (b"one\ntwo\n", b"two\none\n")
        assert c.attach(stdout=True, stderr=False, stream=False, logs=True) == b"one\n"
    finally:
        c.remove(force=True)


@pytest.mark.parametrize("condition", ["not-running", "next-exit"])
def test_wait_returns_at_exit_despite_restart_policy(client, image, name, condition):
    c = client.containers.run(image, ["sh", "-c", "sleep 1; exit 3"], name=name, detach=True,
                              restart_policy={"Name": "always"})
    try:
        assert c.wait(timeout=60, condition=condition)["StatusCode"] == 3
    finally:
        c.remove(force=True)


def test_run_rm_of_container_that_cannot_start_ends_and_removes_it(docker, image, name):
    r = docker("run", "--rm", "--name", name, image, "/no/such/binary", timeout=60)
    assert r.returncode == 127
    assert "no such file or directory" in r.stderr
    assert docker("ps", "-aq", "--filter", f"name=^{name}$").stdout.strip() == ""


def _hijack(sock_path: str, path: str, body: dict) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(sock_path)
    data = json.dumps(body).encode()
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nConnection: Upgrade\r\n"
              f"Upgrade: tcp\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def test_exec_detach_keys_from_exec_config(client, api_socket, image, name):
    c = client.containers.run(image, ["sleep", "600"], name=name, detach=True)
    try:
        exec_id = client.api.exec_create(c.id, ["cat"], stdin=True, tty=True, detach_keys="ctrl-x")["Id"]
        s = _hijack(api_socket, f"/exec/{exec_id}/start", {"Detach": False, "Tty": True})
        s.sendall(b"ping\n")
        seen = b""
        while b"ping" not in seen:
            seen += s.recv(4096)
        s.sendall(b"\x18")  # ctrl-x: the exec's own detach key (not the default ctrl-p,ctrl-q)
        rest = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        s.close()
        assert client.api.exec_inspect(exec_id)["Running"] is True  # detached, not ended
    finally:
        c.remove(force=True)


def test_docker_py_run_remove_returns_the_whole_output(client, image):
    """docker-py joins the log stream only after it removed the container: the stream must not lose lines."""
    for _ in range(5):
        out = client.containers.run(image, ["sh", "-c", "echo hello; echo two"], remove=True)
        assert out == b"hello\ntwo\n"
