"""Registry round trips through the docker CLI against the real registry (Debian's docker-registry on
loopback, started by tests/registry's helper): push, rmi, pull, run; `docker login` (POST /auth) against an
htpasswd registry, and a push that needs the stored credentials."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from apihelpers import api_request, response_validator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "registry"))
from registryhelpers import REGISTRY_BIN, USERS, Registry, make_htpasswd  # noqa: E402

pytestmark = pytest.mark.skipif(not Path(REGISTRY_BIN).exists(), reason=f"{REGISTRY_BIN} is not installed")

USER, PASSWORD = next(iter(USERS.items()))


@pytest.fixture(scope="module")
def regdir(tmp_path_factory):
    return tmp_path_factory.mktemp("registries")


@pytest.fixture(scope="module")
def plain_registry(regdir):
    reg = Registry(regdir / "plain")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry(regdir):
    reg = Registry(regdir / "auth", htpasswd=make_htpasswd(regdir / "htpasswd.txt", USERS))
    yield reg
    reg.stop()


def _image_with_file(docker, image, ref: str, content: str) -> None:
    """An image of our own making (a layer no other image has), tagged ref."""
    src = "src-" + uuid.uuid4().hex[:8]
    r = docker("run", "--name", src, image, "sh", "-c", f"echo {content} > /pushed.txt")
    assert r.returncode == 0, r.stderr
    try:
        r = docker("commit", "-c", 'CMD ["cat", "/pushed.txt"]', src, ref)
        assert r.returncode == 0, r.stderr
    finally:
        docker("rm", "-f", src)


def test_push_rmi_pull_run(docker, image, plain_registry):
    ref = f"{plain_registry.host}/x:1"
    _image_with_file(docker, image, ref, "round-trip")
    push = docker("push", ref, timeout=300)
    assert push.returncode == 0, push.stderr
    assert "1: digest: sha256:" in push.stdout
    digest = push.stdout.split("digest: ")[1].split()[0]

    rmi = docker("rmi", ref)
    assert rmi.returncode == 0, rmi.stderr
    assert f"Untagged: {ref}" in rmi.stdout and "Deleted: sha256:" in rmi.stdout
    assert docker("image", "inspect", ref).returncode == 1

    pull = docker("pull", ref, timeout=300)
    assert pull.returncode == 0, pull.stderr
    assert f"Digest: {digest}" in pull.stdout
    assert f"Status: Downloaded newer image for {ref}" in pull.stdout
    run = docker("run", "--rm", ref)
    assert (run.returncode, run.stdout) == (0, "round-trip\n"), run.stderr
    docker("rmi", ref)


def test_pull_unknown_tag(docker, plain_registry):
    r = docker("pull", f"{plain_registry.host}/x:no-such-tag")
    assert r.returncode == 1
    assert "manifest unknown" in r.stderr or "not found" in r.stderr


def test_login_push_logout(docker, image, auth_registry):
    host = auth_registry.host
    bad = docker("login", host, "-u", USER, "--password-stdin", input="wrong-password\n")
    assert bad.returncode == 1
    assert "401 Unauthorized" in bad.stderr

    ref = f"{host}/private:1"
    _image_with_file(docker, image, ref, "private")
    try:
        anonymous = docker("push", ref, timeout=300)
        assert anonymous.returncode == 1
        assert "no basic auth credentials" in anonymous.stderr

        good = docker("login", host, "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert good.returncode == 0, good.stderr
        assert "Login Succeeded" in good.stdout
        push = docker("push", ref, timeout=300)
        assert push.returncode == 0, push.stdout + push.stderr
        assert "1: digest: sha256:" in push.stdout
    finally:
        docker("logout", host)
        docker("rmi", ref)


def test_docker_py_login(client, auth_registry, api_socket):
    import docker as dockerpy

    ok = client.login(USER, PASSWORD, registry=f"http://{auth_registry.host}", reauth=True)
    assert ok["Status"] == "Login Succeeded"
    with pytest.raises(dockerpy.errors.APIError) as info:
        client.login(USER, "nope", registry=f"http://{auth_registry.host}", reauth=True)
    assert info.value.status_code == 401
    assert "401 Unauthorized" in info.value.explanation
    status, _, body = api_request(api_socket, "POST", "/auth", {"username": USER, "password": PASSWORD,
                                                              "serveraddress": auth_registry.host})
    assert status == 200
    response_validator("/auth", "post", 200).validate(body)
    assert body == {"Status": "Login Succeeded", "IdentityToken": ""}
