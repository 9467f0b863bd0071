"""The API server under many clients at once: bursts of new connections, many IDs in one CLI call,
1,000 idle keep-alive connections, long streams held open beside short requests (issue 10)."""

from __future__ import annotations

import json
import resource
import socket
import threading

from apihelpers import api_request

PS = b"GET /v1.44/containers/json?all=1 HTTP/1.1\r\nHost: docker\r\n\r\n"


def _read_head(s: socket.socket) -> tuple[int, bytes]:
    """(status, bytes after the head) of the response on s."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        assert data, f"connection closed before the response head: {buf!r}"
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


def _ps_on(s: socket.socket) -> list:
    """One GET /containers/json on an open connection: the parsed list."""
    s.sendall(PS)
    status, rest = _read_head(s)
    assert status == 200
    # /containers/json answers with a Content-Length body; read until it parses
    while True:
        try:
            return json.loads(rest)
        except ValueError:
            data = s.recv(65536)
            assert data
            rest += data


def _connect(path: str, timeout: float = 60) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    return s


def _burst(api_socket: str, clients: int) -> list[str]:
    """clients new connections at once, each one GET /containers/json; the failures."""
    barrier = threading.Barrier(clients)
    failures: list[str] = []

    def one() -> None:
        barrier.wait()
        try:
            with _connect(api_socket) as s:
                assert isinstance(_ps_on(s), list)
        except Exception as e:  # collected: the assert below names them all
            failures.append(repr(e))

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def test_100_concurrent_clients_all_served(api_socket):
    assert _burst(api_socket, 100) == []


def test_docker_ps_from_many_cli_processes_at_once(docker_env, api_socket):
    import subprocess

    procs = [subprocess.Popen(["docker", "ps", "-q"], env=docker_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(30)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [r for r in results if r[0] != 0] == []


def test_rm_f_of_64_ids_in_one_call_removes_all(api_socket, docker, image, name):
    lock = threading.Lock()
    created: list[str] = []

    def make_and_record(i: int) -> None:
        status, _, body = api_request(api_socket, "POST", f"/containers/create?name={name}-{i}",
                                      {"Image": image, "Cmd": ["sleep", "600"]})
        if status == 201:
            with lock:
                created.append(body["Id"])
            api_request(api_socket, "POST", f"/containers/{body['Id']}/start")

    threads = [threading.Thread(target=make_and_record, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(created) == 64
        running = docker("ps", "-q", "--no-trunc", "--filter", f"name={name}-").stdout.split()
        assert sorted(running) == sorted(created)
        r = docker("rm", "-f", *created, timeout=300)
        assert r.returncode == 0, r.stderr
        assert sorted(r.stdout.split()) == sorted(created)
        assert docker("ps", "-aq", "--filter", f"name={name}-").stdout.split() == []
    finally:
        for cid in created:
            api_request(api_socket, "DELETE", f"/containers/{cid}?force=1")


def test_1000_idle_keepalive_connections_do_not_block_a_new_one(api_socket):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    idle: list[socket.socket] = []
    try:
        for _ in range(1000):
            s = _connect(api_socket)
            idle.append(s)
            assert isinstance(_ps_on(s), list)  # served once, then left idle with keep-alive
        with _connect(api_socket) as s:
            assert isinstance(_ps_on(s), list)
        assert _burst(api_socket, 50) == []
        # the idle ones are still usable
        assert isinstance(_ps_on(idle[0]), list) and isinstance(_ps_on(idle[-1]), list)
    finally:
        for s in idle:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_long_streams_do_not_starve_short_requests(api_socket, docker, image, running):
    """More open streams (events, logs -f, wait) than the server has workers; short requests, a new
    stream and a hijacked `docker run` (attach + wait) still go through."""
    streams: list[socket.socket] = []
    try:
        for i in range(90):
            s = _connect(api_socket)
            streams.append(s)
            if i % 3 == 0:
                s.sendall(b"GET /v1.44/events HTTP/1.1\r\nHost: docker\r\n\r\n")
            elif i % 3 == 1:
                s.sendall(f"GET /v1.44/containers/{running}/logs?follow=1&stdout=1 HTTP/1.1\r\n"
                          "Host: docker\r\n\r\n".encode())
            else:
                s.sendall(f"POST /v1.44/containers/{running}/wait HTTP/1.1\r\nHost: docker\r\n"
                          "Content-Length: 0\r\n\r\n".encode())
        for s in streams[:60:3] + streams[1:60:3]:  # events and logs answer their head at once
            assert _read_head(s)[0] == 200
        assert _burst(api_socket, 60) == []
        r = docker("run", "--rm", image, "echo", "through")
        assert (r.returncode, r.stdout) == (0, "through\n"), r.stderr
        assert docker("inspect", "--format", "{{.State.Running}}", running).stdout.strip() == "true"
    finally:
        for s in streams:
            s.close()


def test_which_requests_leave_the_bounded_pool():
    from nanovisor.api.server import is_long

    for method, target in [("GET", "/v1.44/events?since=1"), ("POST", "/containers/abc/attach?stream=1"),
                           ("POST", "/v1.50/containers/abc/wait"), ("GET", "/containers/abc/logs?follow=1"),
                           ("POST", "/exec/abc/start"), ("GET", "/images/busybox:latest/get"),
                           ("PUT", "/containers/abc/archive?path=/"), ("POST", "/v1.44/auth"),
                           ("GET", "/distribution/registry.local:5000/app:1/json")]:
        assert is_long(method, target), target
    for method, target in [("GET", "/v1.44/containers/json"), ("POST", "/containers/create"),
                           ("POST", "/containers/abc/start"), ("DELETE", "/containers/abc?force=1"),
                           ("GET", "/containers/abc/json")]:
        assert not is_long(method, target), target
