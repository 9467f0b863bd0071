"""TLS for tcp hosts (issue 11): `serve --tlsverify` with certificates from `nanovisor tls init`, driven by the
real docker CLI (flags and DOCKER_TLS_VERIFY/DOCKER_CERT_PATH) and docker-py's TLSConfig; clients without
a certificate from the CA refused; plain HTTP on a non-loopback address refused unless --insecure-tcp."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apihelpers import ServeProcess, free_port

from nanovisor.api.tls import TLSOptions


def _tls_init(d: Path) -> Path:
    r = subprocess.run([sys.executable, "-m", "nanovisor", "tls", "init", str(d)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return d


def _wait_tls(port: int, certs: Path, server: ServeProcess) -> None:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"serve exited:\n{server.output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"TLS serve never answered:\n{server.output()}")


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    return _tls_init(tmp_path_factory.mktemp("tls") / "certs")


@pytest.fixture(scope="module")
def tls_serve(nv_root, certs, tmp_path_factory):
    """(port, serve) of a `serve --tlsverify` on 127.0.0.1 with the server certificate from certs."""
    port = free_port()
    log = tmp_path_factory.mktemp("tls-serve") / "serve.log"
    server = ServeProcess(nv_root, [f"tcp://127.0.0.1:{port}"], log,
                          ["--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert",
                           str(certs / "server-cert.pem"), "--tlskey", str(certs / "server-key.pem")])
    try:
        _wait_tls(port, certs, server)
        yield port, server
    finally:
        server.stop()


def _env(docker_env: dict, **kw: str) -> dict:
    env = {k: v for k, v in docker_env.items() if not k.startswith("DOCKER_TLS") and k != "DOCKER_CERT_PATH"}
    env.update(kw)
    return env


def _docker(env: dict, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], env=env, input=input, capture_output=True, text=True, timeout=120)


def test_docker_cli_with_tls_env(tls_serve, certs, docker_env, image):
    port, _ = tls_serve
    env = _env(docker_env, DOCKER_HOST=f"tcp://127.0.0.1:{port}", DOCKER_TLS_VERIFY="1",
               DOCKER_CERT_PATH=str(certs))
    v = _docker(env, "version", "--format", "{{.Server.APIVersion}}")
    assert v.returncode == 0 and v.stdout.strip() == "1.50", v.stderr
    r = _docker(env, "run", "--rm", image, "echo", "over-tls")        # attach + wait, hijacked over TLS
    assert (r.returncode, r.stdout) == (0, "over-tls\n"), r.stderr
    r = _docker(env, "run", "--rm", "-i", image, "sh", "-c", "cat; exit 3", input="piped\n")
    assert (r.returncode, r.stdout) == (3, "piped\n"), r.stderr       # stdin half-close over TLS
    name = f"tls-exec-{os.getpid()}"
    assert _docker(env, "run", "-d", "--name", name, image, "sleep", "600").returncode == 0
    try:
        r = _docker(env, "exec", "-i", name, "sh", "-c", "tr a-z A-Z", input="exec over tls\n")
        assert (r.returncode, r.stdout) == (0, "EXEC OVER TLS\n"), r.stderr
    finally:
        _docker(env, "rm", "-f", name)


def test_docker_cli_with_tls_flags(tls_serve, certs, docker_env):
    port, _ = tls_serve
    r = _docker(_env(docker_env, DOCKER_HOST=""), "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
                "--tlscert", str(certs / "cert.pem"), "--tlskey", str(certs / "key.pem"),
                "-H", f"tcp://127.0.0.1:{port}", "ps", "-a")
    assert r.returncode == 0 and r.stdout.startswith("CONTAINER ID"), r.stderr


def test_docker_py_tls_config(tls_serve, certs, image, monkeypatch):
    import docker as dockerpy

    # requests lets these override the session's CA file (psf/requests#3829): not what is tested here
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    port, _ = tls_serve
    tls = dockerpy.tls.TLSConfig(ca_cert=str(certs / "ca.pem"),
                                 client_cert=(str(certs / "cert.pem"), str(certs / "key.pem")), verify=True)
    c = dockerpy.DockerClient(base_url=f"https://127.0.0.1:{port}", tls=tls, timeout=120)
    try:
        assert c.ping() is True
        assert c.containers.run(image, ["echo", "py-tls"], remove=True) == b"py-tls\n"
    finally:
        c.close()


def test_clients_without_a_certificate_from_the_ca_are_refused(tls_serve, certs, docker_env, tmp_path):
    port, server = tls_serve
    other = _tls_init(tmp_path / "other")   # a client certificate from another CA
    env = _env(docker_env, DOCKER_HOST=f"tcp://127.0.0.1:{port}", DOCKER_TLS_VERIFY="1",
               DOCKER_CERT_PATH=str(other))
    shutil.copy(certs / "ca.pem", other / "ca.pem.ours")
    os.replace(other / "ca.pem.ours", other / "ca.pem")     # it trusts our server, but its cert is foreign
    r = _docker(env, "ps")
    assert r.returncode != 0 and "certificate" in r.stderr.lower(), r.stderr
    r = _docker(_env(docker_env, DOCKER_HOST=f"tcp://127.0.0.1:{port}"), "ps")   # plain HTTP
    assert r.returncode != 0 and "Client sent an HTTP request to an HTTPS server" in r.stderr, r.stderr
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))              # TLS, no client cert
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /containers/json HTTP/1.1\r\nHost: x\r\n\r\n")
                if not s.recv(100):
                    raise ConnectionError("closed")
    assert server.proc.poll() is None


def test_defaults_as_dockerd_cert_path_and_port_2376(nv_root, tmp_path, docker_env):
    """--tlsverify alone: ca.pem/cert.pem/key.pem from DOCKER_CERT_PATH, and a tcp host without a port
    is 2376."""
    certs = _tls_init(tmp_path / "certs")
    served = tmp_path / "server"
    served.mkdir()
    shutil.copy(certs / "ca.pem", served / "ca.pem")
    shutil.copy(certs / "server-cert.pem", served / "cert.pem")
    shutil.copy(certs / "server-key.pem", served / "key.pem")
    server = ServeProcess(nv_root, ["tcp://127.0.0.1"], tmp_path / "serve.log", ["--tlsverify"],
                          env={"DOCKER_CERT_PATH": str(served)})
    try:
        _wait_tls(2376, certs, server)
        env = _env(docker_env, DOCKER_HOST="tcp://127.0.0.1:2376", DOCKER_TLS_VERIFY="1",
                   DOCKER_CERT_PATH=str(certs))
        r = _docker(env, "info", "--format", "{{.ServerVersion}}")
        assert r.returncode == 0, r.stderr
    finally:
        server.stop()


def test_plain_tcp_on_a_non_loopback_address_needs_insecure_tcp(nv_root, tmp_path, docker_env):
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(nv_root), "serve", "-H",
                        f"tcp://0.0.0.0:{port}"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--insecure-tcp" in r.stderr and "TLS" in r.stderr, r.stderr
    server = ServeProcess(nv_root, [f"tcp://0.0.0.0:{port}"], tmp_path / "serve.log", ["--insecure-tcp"])
    try:
        server.wait_ready(tcp=("127.0.0.1", port))
        assert "without TLS" in server.output()
        r = _docker(_env(docker_env, DOCKER_HOST=f"tcp://127.0.0.1:{port}"), "ps")
        assert r.returncode == 0, r.stderr
    finally:
        server.stop()


def test_tls_options_follow_dockerd(monkeypatch):
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.setenv("DOCKER_CERT_PATH", "/certs")
    o = TLSOptions().resolved()
    assert (o.enabled, o.cacert, o.cert, o.key) == (False, "/certs/ca.pem", "/certs/cert.pem", "/certs/key.pem")
    assert TLSOptions(verify=True).resolved().enabled
    assert TLSOptions(verify=False).resolved().enabled          # --tlsverify=false still turns TLS on
    assert not TLSOptions(verify=False).resolved().verify
    assert TLSOptions(tls=False).resolved().plain_on_purpose     # dockerd 27's explicit --tls=false
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    o = TLSOptions().resolved()
    assert o.enabled and o.verify
