"""Session fixtures for nano images: one engine root where the images are built offline from the .deb
cache (once per session: nano/python is reused by every test), and a real `nanovisor serve` on it that the
real docker CLI talks to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
from apihelpers import ServeProcess  # noqa: E402
from nanohelpers import nano  # noqa: E402
from nvtest import cleanup_root  # noqa: E402

from nanovisor.nano.debcache import DEFAULT_CACHE  # noqa: E402


@pytest.fixture(scope="session")
def deb_cache() -> Path:
    if not any(DEFAULT_CACHE.glob("python3_*.deb")):
        pytest.fail(f"the .deb cache {DEFAULT_CACHE} is not filled: run scripts/install.sh")
    return DEFAULT_CACHE


@pytest.fixture(scope="session")
def nano_root(deb_cache):
    """A root with nano/python built from the cache (offline: tests run without a network)."""
    root = Path(tempfile.mkdtemp(prefix="nv-nano-root-"))
    built = nano(root, "build", "--package", "python3", "-t", "nano/python")
    if built.returncode != 0:
        pytest.fail(f"nano build --package python3 failed:\n{built.stdout}\n{built.stderr}")
    root.joinpath("python-id").write_text(built.stdout.strip())
    yield root
    cleanup_root(root)


@pytest.fixture(scope="session")
def python_id(nano_root) -> str:
    return (nano_root / "python-id").read_text()


@pytest.fixture(scope="session")
def nano_socket(nano_root):
    tmp = Path(tempfile.mkdtemp(prefix="nv-nano-"))
    sock = str(tmp / "docker.sock")
    server = ServeProcess(nano_root, [f"unix://{sock}"], tmp / "serve.log")
    try:
        server.wait_ready(sock=sock)
        yield sock
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def docker(nano_socket, tmp_path_factory):
    """docker(*args) -> CompletedProcess of the real docker CLI against serve on nano_root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=f"unix://{nano_socket}", DOCKER_CONFIG=str(tmp_path_factory.mktemp("dockercfg")),
               DOCKER_CLI_HINTS="false")

    def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def built(nano_root):
    """built(tag, *args): `nano build` into nano_root once per session and tag; fails the test on error."""
    done: dict[str, str] = {}

    def build(tag: str, *args: str) -> str:
        if tag not in done:
            r = nano(nano_root, "build", *args, "-t", tag)
            assert r.returncode == 0, r.stderr
            done[tag] = r.stdout.strip()
        return done[tag]

    return build
