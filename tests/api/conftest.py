"""A real `nanovisor serve` on a scratch root and a unix socket, driven by the docker CLI and docker-py.

Session scoped: the busybox base image is built once (it costs seconds) and one server serves every test;
tests name their containers uniquely and clean up what they create.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from apihelpers import ServeProcess, api_request, docker_cli, docker_cli_env

IMAGE = "nano/busybox"


def nanovisor(root: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=600, **kw)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


@pytest.fixture(scope="session")
def nv_root():
    """A scratch data root with nano/busybox built into it."""
    root = Path(tempfile.mkdtemp(prefix="nv-api-root-"))
    built = nanovisor(root, "nano", "build", "busybox")
    if built.returncode != 0:
        pytest.fail(f"nano build busybox failed:\n{built.stdout}\n{built.stderr}")
    yield root
    _teardown_root(root)


_TEARDOWN = """
import sys
from nanovisor.engine.engine import Engine
engine = Engine(sys.argv[1])
if engine.network is not None:
    engine.network.teardown()
print(engine.paths.run)
"""


def _teardown_root(root: Path) -> None:
    """Remove the kernel objects the engine made for this root (bridge, netns mount), then its files."""
    done = subprocess.run([sys.executable, "-c", _TEARDOWN, str(root)], capture_output=True, text=True,
                          timeout=120)
    run_dir = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    for path in (root, run_dir):
        if path is not None and path.exists() and not _mounts_under(path):
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def api_socket(nv_root):
    """Path of the unix socket of a running `nanovisor serve` on nv_root."""
    tmp = Path(tempfile.mkdtemp(prefix="nv-api-"))
    sock = str(tmp / "docker.sock")
    server = ServeProcess(nv_root, [f"unix://{sock}"], tmp / "serve.log")
    try:
        server.wait_ready(sock=sock)
        yield sock
    finally:
        _remove_all_containers(sock)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_all_containers(sock: str) -> None:
    try:
        status, _, items = api_request(sock, "GET", "/containers/json?all=1")
        for c in items if status == 200 else []:
            api_request(sock, "DELETE", f"/containers/{c['Id']}?force=1&v=1")
    except OSError:
        pass


@pytest.fixture(scope="session")
def docker_env(api_socket, tmp_path_factory):
    """Environment for the real docker CLI talking to our socket (own config dir, no hints)."""
    return docker_cli_env(api_socket, tmp_path_factory.mktemp("dockercfg"))


@pytest.fixture(scope="session")
def docker(docker_env):
    """docker(*args, input=None) -> CompletedProcess (text) of the real docker CLI."""
    return docker_cli(docker_env)


@pytest.fixture(scope="session")
def client(api_socket):
    """docker-py high-level client on our socket."""
    import docker as dockerpy

    c = dockerpy.DockerClient(base_url="unix://" + api_socket, timeout=120)
    yield c
    c.close()


@pytest.fixture
def name(request) -> str:
    """A unique container name for this test."""
    return f"t-{request.node.name[:30].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def image(nv_root) -> str:
    """The base image every test runs."""
    return IMAGE


@pytest.fixture
def running(docker, image, name):
    """A detached long-running container (sleep), removed after the test."""
    r = docker("run", "-d", "--name", name, image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    yield name
    docker("rm", "-f", name)
