"""A two-service docker-compose app, unchanged, through docker-compose 1.29.2 (Debian's package): a web server
and a cache on a custom network, a named volume, a bind mount, a published port, a scaled service, `up` twice
and `down -v`, in each isolation (compose's own `isolation:` key)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

import pytest
from apihelpers import free_port
from nvtest import wait_for

ISOLATIONS = [pytest.param("process", id="process"), pytest.param("hyperv", id="vm", marks=pytest.mark.vm)]

COMPOSE_FILE = """
version: "3.8"
services:
  cache:
    image: {image}
    isolation: {isolation}
    command: sh -c 'echo PONG > /data/index.html && exec httpd -f -p 6379 -h /data'
    volumes: [data:/data]
    networks: [app]
  web:
    image: {image}
    isolation: {isolation}
    command: httpd -f -p 8080 -h /www
    ports: ["127.0.0.1:{port}:8080"]
    volumes: ["./html:/www:ro"]
    depends_on: [cache]
    networks: [app]
  worker:
    image: {image}
    isolation: {isolation}
    command: sleep 600
    networks: [app]
networks:
  app: {{}}
volumes:
  data: {{}}
"""


@pytest.fixture(scope="module")
def compose_bin():
    path = shutil.which("docker-compose")
    assert path, "docker-compose is installed by scripts/install.sh --test"
    return path


@pytest.fixture(params=ISOLATIONS)
def project(request, tmp_path, docker_env, compose_bin, image):
    isolation = request.param
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "index.html").write_text("hello from compose\n")
    port = free_port()
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE.format(image=image, isolation=isolation, port=port))
    name = f"nvc{isolation[:2]}{port}"

    def compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([compose_bin, "-p", name, *args], cwd=tmp_path, env=docker_env,
                              capture_output=True, text=True, timeout=timeout)

    yield compose, port, name
    compose("down", "-v", "--remove-orphans")


def test_compose_app_up_twice_scale_and_down(project, docker):
    compose, port, name = project
    up = compose("up", "-d")
    assert up.returncode == 0, up.stderr
    # the published port serves the bind-mounted page
    wait_for(lambda: _get(f"http://127.0.0.1:{port}/index.html") == "hello from compose\n", timeout=60)
    # service names resolve on the project network
    out = compose("exec", "-T", "web", "wget", "-qO-", "http://cache:6379/")
    assert out.returncode == 0 and out.stdout == "PONG\n", out.stderr
    web = json.loads(docker("inspect", f"{name}_web_1").stdout)[0]
    assert list(web["NetworkSettings"]["Networks"]) == [f"{name}_app"]
    assert web["NetworkSettings"]["Networks"][f"{name}_app"]["IPAddress"]

    again = compose("up", "-d")
    assert again.returncode == 0, again.stderr
    assert "up-to-date" in again.stderr

    scaled = compose("up", "-d", "--scale", "worker=3")
    assert scaled.returncode == 0, scaled.stderr
    ps = compose("ps", "-q", "worker")
    assert len(ps.stdout.split()) == 3, ps.stdout + ps.stderr

    down = compose("down", "-v")
    assert down.returncode == 0, down.stderr
    assert docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={name}").stdout.strip() == ""
    assert docker("network", "inspect", f"{name}_app").returncode != 0
    assert docker("volume", "inspect", f"{name}_data").returncode != 0


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return None
