"""A real two-service app through docker-compose 1.29.2 (Debian's package), unchanged, in each isolation
(compose's own `isolation:` key): redis built from Debian's redis-server and a web app on nano/python built
from Debian's python3 (both with `nanovisor nano build`, offline from the .deb cache), a custom network, a
redis healthcheck that web waits for (`service_healthy`), a named volume redis saves into, the app's source
bind-mounted read-only, a published port, web scaled to 3, `up` twice and `down -v`. The project is
tests/api/compose_app/, copied as is."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from nvtest import run_cli, wait_for

from nanovisor.nano.debcache import DEFAULT_CACHE

APP = Path(__file__).parent / "compose_app"
ISOLATIONS = [pytest.param("process", id="process"), pytest.param("hyperv", id="vm", marks=pytest.mark.vm)]


@pytest.fixture(scope="module")
def compose_bin():
    path = shutil.which("docker-compose")
    assert path, "docker-compose is installed by scripts/install.sh"
    return path


@pytest.fixture(scope="module")
def app_images(nv_root, api_socket):
    """nano/redis and nano/python in the served root, built once per module from the .deb cache."""
    for pkg in ("redis-server", "python3"):
        if not any(DEFAULT_CACHE.glob(f"{pkg}_*.deb")):
            pytest.fail(f"{pkg} is not in the .deb cache {DEFAULT_CACHE}: run scripts/install.sh")
    for pkg, tag in (("redis-server", "nano/redis"), ("python3", "nano/python")):
        run_cli(nv_root, "nano", "build", "--package", pkg, "-t", tag, timeout=300, check=True)


@pytest.fixture(params=ISOLATIONS)
def project(request, tmp_path, docker_env, compose_bin, app_images):
    """compose(*args) in a copy of the app's directory, with ISOLATION set; `down -v` at the end."""
    shutil.copytree(APP, tmp_path / "app")
    name = f"nvc{request.param[:2]}{tmp_path.name[-6:].lower()}"
    env = {**docker_env, "ISOLATION": request.param}

    def compose(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([compose_bin, "-p", name, *args], cwd=tmp_path / "app", env=env,
                              capture_output=True, text=True, timeout=timeout)

    yield compose, name
    compose("down", "-v", "--remove-orphans")


def test_compose_app_up_twice_scale_and_down(project, docker):
    compose, name = project
    up = compose("up", "-d")
    assert up.returncode == 0, up.stderr
    # web was started only once redis answered its healthcheck
    redis = _inspect(docker, f"{name}_redis_1")
    assert redis["State"]["Health"]["Status"] == "healthy"
    assert redis["State"]["Health"]["Log"][-1]["Output"].strip() == "PONG"
    assert "(healthy)" in docker("ps", "--filter", f"name={name}_redis_1", "--format", "{{.Status}}").stdout
    web = _inspect(docker, f"{name}_web_1")
    assert list(web["NetworkSettings"]["Networks"]) == [f"{name}_back"]
    assert web["NetworkSettings"]["Networks"][f"{name}_back"]["IPAddress"]

    # through the published port, web counts in redis, found by its service name
    url = _url(compose, 1)
    first = _hits(url, compose)
    assert _hits(url, compose)[0] == first[0] + 1

    again = compose("up", "-d")
    assert again.returncode == 0, again.stderr
    assert "up-to-date" in again.stderr
    assert _inspect(docker, f"{name}_web_1")["Id"] == web["Id"]

    scaled = compose("up", "-d", "--scale", "web=3")
    assert scaled.returncode == 0, scaled.stderr
    assert len(compose("ps", "-q", "web").stdout.split()) == 3
    assert _inspect(docker, f"{name}_web_1")["Id"] == web["Id"]  # kept, two more beside it
    answers = [_hits(_url(compose, i), compose) for i in (1, 2, 3)]
    assert [n for n, _ in answers] == [first[0] + 2, first[0] + 3, first[0] + 4]  # one counter for all three
    assert len({host for _, host in answers}) == 3

    # redis keeps its data in the named volume (its image's workdir /data, owned by its user)
    assert compose("exec", "-T", "redis", "redis-cli", "get", "hits").stdout.strip() == str(first[0] + 4)
    assert compose("exec", "-T", "redis", "redis-cli", "save").stdout.strip() == "OK"
    volume = json.loads(docker("volume", "inspect", f"{name}_data").stdout)[0]
    dump = Path(volume["Mountpoint"]) / "dump.rdb"
    assert dump.read_bytes().startswith(b"REDIS") and b"hits" in dump.read_bytes()

    down = compose("down", "-v")
    assert down.returncode == 0, down.stderr
    assert docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={name}").stdout.strip() == ""
    assert docker("network", "inspect", f"{name}_back").returncode != 0
    assert docker("volume", "inspect", f"{name}_data").returncode != 0


def _inspect(docker, container: str) -> dict:
    r = docker("inspect", container)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def _url(compose, index: int) -> str:
    """The host address of web #index's published port, as `docker-compose port` gives it."""
    r = compose("port", "--index", str(index), "web", "8080")
    assert r.returncode == 0 and r.stdout.strip().startswith("127.0.0.1:"), r.stdout + r.stderr
    return f"http://{r.stdout.strip()}/"


def _hits(url: str, compose) -> tuple[int, str]:
    """(hit count, answering host) of one GET, once the app answers (python may still be starting)."""
    answer: list[str] = []

    def got() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                answer.append(resp.read().decode())
            return True
        except OSError:
            return False

    try:
        wait_for(got, timeout=120)
    except pytest.fail.Exception:
        pytest.fail(f"{url} did not answer:\n{compose('ps').stdout}\n{compose('logs', '--no-color', 'web').stdout}")
    count, host = answer[-1].split()
    return int(count), host
