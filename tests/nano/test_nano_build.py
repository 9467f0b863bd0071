"""`nanovisor nano build --package ...`: images assembled offline from the .deb cache, run with the real
docker CLI against `nanovisor serve`; reproducible; what went in is recorded; clear refusals."""

from __future__ import annotations

import json
import tempfile
import urllib.request
import uuid
from pathlib import Path

import pytest
from nanohelpers import nano
from nvtest import cleanup_root, wait_for


def test_python_runs_stdlib_as_nonroot(docker, python_id):
    r = docker("run", "--rm", "nano/python", "-c",
               "import json, ssl, sqlite3, os; ssl.create_default_context(); print('ok', os.getuid())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ok", "65532"]
    cfg = json.loads(docker("image", "inspect", "nano/python").stdout)[0]["Config"]
    assert cfg["Entrypoint"] == ["/usr/bin/python3"] and cfg["User"] == "nonroot"
    assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in cfg["Env"]


def test_python_image_keeps_only_what_runs(docker, python_id):
    probe = ("import os; print(sorted(p for p in ['/bin/sh', '/bin/bash', '/usr/bin/dpkg', '/usr/share/man', "
             "'/usr/share/locale', '/etc/apt', '/usr/share/doc/python3.11/changelog.Debian.gz'] "
             "if os.path.lexists(p)))")
    r = docker("run", "--rm", "nano/python", "-c", probe)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    r = docker("run", "--rm", "nano/python", "-c",
               "import os; print(os.path.exists('/usr/share/doc/libc6/copyright'), "
               "open('/etc/passwd').read().count(':'))")
    assert r.stdout.split()[0] == "True", r.stderr  # licences stay


def test_sbom_inside_and_as_label(docker, python_id, deb_cache):
    labels = json.loads(docker("image", "inspect", "nano/python").stdout)[0]["Config"]["Labels"]
    doc = json.loads(labels["org.nanovisor.nano.sbom"])
    assert doc["spdxVersion"] == "SPDX-2.3"
    versions = {p["name"]: p["versionInfo"] for p in doc["packages"]}
    [deb] = deb_cache.glob("python3.11-minimal_*.deb")
    assert versions["python3.11-minimal"] == deb.name.split("_")[1].replace("%3a", ":")
    assert "dpkg" not in versions and "libc6" in versions
    assert any(r["referenceLocator"].startswith("pkg:deb/debian/python3@")
               for p in doc["packages"] for r in p["externalRefs"])
    inside = docker("run", "--rm", "nano/python", "-c",
                    "import json; print(json.dumps(json.load(open('/usr/share/nano/sbom.spdx.json'))))")
    assert json.loads(inside.stdout) == doc


def test_same_packages_give_the_same_image_id(python_id):
    other = Path(tempfile.mkdtemp(prefix="nv-nano-again-"))
    try:
        r = nano(other, "build", "--package", "python3", "-t", "again/python")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == python_id
    finally:
        cleanup_root(other)


def test_redis_serves(docker, built):
    built("nano/redis", "--package", "redis-server")
    name = f"redis-{uuid.uuid4().hex[:6]}"
    r = docker("run", "-d", "--name", name, "nano/redis")
    assert r.returncode == 0, r.stderr
    try:
        wait_for(lambda: docker("exec", name, "redis-cli", "ping").stdout.strip() == "PONG")
        assert docker("exec", name, "redis-cli", "set", "k", "v").stdout.strip() == "OK"
        assert docker("exec", name, "redis-cli", "get", "k").stdout.strip() == "v"
        assert docker("exec", name, "id", "-u").returncode != 0  # no coreutils: nothing but redis
    finally:
        docker("rm", "-f", name)


def test_nginx_light_serves_its_page(docker, built):
    built("nano/nginx", "--package", "nginx-light")
    name = f"nginx-{uuid.uuid4().hex[:6]}"
    r = docker("run", "-d", "--name", name, "nano/nginx")
    assert r.returncode == 0, r.stderr
    try:
        ip = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name).stdout.strip()
        page: list[bytes] = []

        def answered() -> bool:
            try:
                page.append(urllib.request.urlopen(f"http://{ip}/", timeout=2).read())
                return True
            except OSError:
                return False

        wait_for(answered)
        assert b"Welcome to nginx" in page[-1]
        # the access log goes to the container's stdout
        wait_for(lambda: "GET / HTTP" in docker("logs", name).stdout)
    finally:
        docker("rm", "-f", name)


def test_shell_keep_and_drop(docker, built):
    built("nano/shell", "--package", "zlib1g", "--shell", "--keep", "usr/share/doc/libc6/*",
          "--drop", "usr/lib/x86_64-linux-gnu/libz.so*")
    r = docker("run", "--rm", "nano/shell", "sh", "-c",
               "ls /usr/share/doc/libc6; ls /usr/lib/x86_64-linux-gnu/ | grep -c libz; id -un")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert "changelog.Debian.gz" in out and out[-2:] == ["0", "nonroot"]


@pytest.mark.parametrize("args, message", [
    (["--package", "no-such-package-here"], "Unable to locate package no-such-package-here"),
    (["--package", "python3", "--cache", "/nonexistent/debs"], "/nonexistent/debs does not exist"),
    ([], "give --package"),
])
def test_refusals(nano_root, args, message):
    r = nano(nano_root, "build", *args, "-t", "refused/x")
    assert r.returncode == 1
    assert message in r.stderr


@pytest.mark.vm
def test_python_and_redis_run_in_vm_isolation(docker, built, python_id):
    r = docker("run", "--rm", "--isolation=vm", "nano/python", "-c", "import json, ssl, sqlite3; print('vm ok')")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "vm ok"
    built("nano/redis", "--package", "redis-server")
    r = docker("run", "--rm", "--isolation=vm", "nano/redis", "--version")
    assert r.returncode == 0 and "Redis server v=" in r.stdout, r.stderr
