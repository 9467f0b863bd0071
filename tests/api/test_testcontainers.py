"""testcontainers-python (what many test suites use to start their dependencies) against nanovisor serve: a
container with an exposed port, a log wait, exec and teardown, unchanged library code. TESTCONTAINERS_HOST_OVERRIDE
and TESTCONTAINERS_CONNECTION_MODE keep its traffic on loopback (it would otherwise guess a bridge gateway: this machine
has a /.dockerenv)."""

from __future__ import annotations

import os
import urllib.request

import pytest


@pytest.fixture
def tc_env(api_socket, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{api_socket}")
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    monkeypatch.setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
    monkeypatch.setenv("TC_HOST", "127.0.0.1")
    monkeypatch.setenv("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    for key in [k for k in os.environ if k.startswith("DOCKER_") and k != "DOCKER_HOST"]:
        monkeypatch.delenv(key)


def test_testcontainers_generic_container(tc_env, image):
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    script = "mkdir -p /w; echo hello > /w/index.html; echo ready; exec httpd -f -p 8080 -h /w"
    container = DockerContainer(image).with_command(["sh", "-c", script]).with_exposed_ports(8080) \
        .with_env("GREETING", "hi").waiting_for(LogMessageWaitStrategy("ready"))
    with container as c:
        host, port = c.get_container_host_ip(), c.get_exposed_port(8080)
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://{host}:{port}/index.html", timeout=10) as resp:
            assert resp.read() == b"hello\n"
        result = c.exec(["sh", "-c", "echo $GREETING"])
        assert (result.exit_code, result.output) == (0, b"hi\n")
        cid = c.get_wrapped_container().id
    import docker

    client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"])
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(cid)
