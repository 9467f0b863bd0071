"""Registry certificates where Docker users keep them: /etc/docker/certs.d/HOST:PORT/ (ca.crt, client.cert +
client.key), pointed at a scratch directory by NANOVISOR_CERTS_D, as well as nanovisor's own certs.d; the
client certificate case end to end through the docker CLI and a real `nanovisor serve`."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from registryhelpers import Registry, make_ca_and_cert, make_client_cert

from nanovisor.errors import InvalidParameter
from nanovisor.images.registry import RegistryError, pull, push
from nanovisor.images.registry.transport import TransportError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "api"))
from apihelpers import ServeProcess, docker_cli, docker_cli_env  # noqa: E402
from nvtest import cleanup_root  # noqa: E402


def test_ca_from_docker_certs_d(tls_registry, source, fresh_store, docker_certs, tmp_path):
    ref = f"{tls_registry.host}/certsd/busybox:1"
    source.tag("nano/busybox", ref)
    own = tmp_path / "own-certs.d"  # nanovisor's own directory: nothing for this registry
    with pytest.raises(TransportError) as e:  # verified TLS, CA unknown
        push(source, ref, insecure_registries=[], certs_dir=own)
    assert "failed to verify certificate" in str(e.value)

    (docker_certs / tls_registry.host).mkdir()
    shutil.copy(tls_registry.ca, docker_certs / tls_registry.host / "ca.crt")
    digest = push(source, ref, insecure_registries=[], certs_dir=own)
    img = pull(fresh_store, ref, insecure_registries=[], certs_dir=own)
    assert img.id == source.resolve("nano/busybox").id
    assert img.repo_digests == [f"{tls_registry.host}/certsd/busybox@{digest}"]


@pytest.fixture(scope="module")
def mtls_registry(workdir):
    """A TLS registry that refuses clients without a certificate signed by its CA."""
    pki = workdir / "mtls-pki"
    certs = make_ca_and_cert(pki)
    reg = Registry(workdir / "mtls", tls=(certs["cert"], certs["key"]), client_ca=certs["ca"])
    reg.pki = pki
    reg.ca = certs["ca"]
    yield reg
    reg.stop()


def test_half_a_client_pair_is_refused_with_dockerds_words(mtls_registry, source, docker_certs):
    ref = f"{mtls_registry.host}/half/busybox:1"
    source.tag("nano/busybox", ref)
    host_dir = docker_certs / mtls_registry.host
    pair = make_client_cert(host_dir, mtls_registry.pki)
    pair["key"].unlink()
    with pytest.raises(InvalidParameter) as e:
        push(source, ref)
    assert str(e.value) == ("missing key client.key for client certificate client.cert. CA certificates must "
                            "use the extension .crt")
    pair["cert"].unlink()
    make_client_cert(host_dir, mtls_registry.pki)["cert"].unlink()
    with pytest.raises(InvalidParameter) as e:
        push(source, ref)
    assert str(e.value) == "missing client certificate client.cert for key client.key"


@pytest.fixture
def serve_with_certs(docker_certs):
    """A `nanovisor serve` of its own (empty root) whose Docker certs.d is the scratch one; the docker CLI."""
    tmp = Path(tempfile.mkdtemp(prefix="nv-certsd-"))
    root, sock = tmp / "root", str(tmp / "docker.sock")
    server = ServeProcess(root, [f"unix://{sock}"], tmp / "serve.log", env={"NANOVISOR_CERTS_D": str(docker_certs)})
    docker = docker_cli(docker_cli_env(sock, tmp / "dockercfg"), timeout=300)

    try:
        server.wait_ready(sock=sock)
        yield docker
    finally:
        server.stop()
        cleanup_root(root)
        shutil.rmtree(tmp, ignore_errors=True)


def test_docker_pull_presents_the_client_certificate_from_certs_d(mtls_registry, source, tmp_path, docker_certs,
                                                                   serve_with_certs):
    docker = serve_with_certs
    ref = f"{mtls_registry.host}/mtls/app:v1"
    source.tag("nano/busybox", ref)
    with pytest.raises(RegistryError):  # the registry wants a client certificate
        push(source, ref, certs_dir=tmp_path / "empty")
    own = tmp_path / "own-certs.d"  # nanovisor's own certs.d serves the push
    make_client_cert(own / mtls_registry.host, mtls_registry.pki)
    push(source, ref, certs_dir=own)

    refused = docker("pull", ref)
    assert refused.returncode == 1 and ref not in docker("images", "--format", "{{.Repository}}").stdout

    make_client_cert(docker_certs / mtls_registry.host, mtls_registry.pki)  # what a Docker user already has
    shutil.copy(mtls_registry.ca, docker_certs / mtls_registry.host / "ca.crt")
    pulled = docker("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert f"Status: Downloaded newer image for {ref}" in pulled.stdout
    # `docker images REPO` with the registry host (and port) in the name, with and without the tag
    rows = docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"{mtls_registry.host}/mtls/app").stdout
    assert rows.split() == [ref]
    rows = docker("images", "--format", "{{.Repository}}:{{.Tag}}", ref).stdout
    assert rows.split() == [ref]
