"""VM isolation through the real docker CLI and docker-py: the flags Docker users already type."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.vm


def test_docker_run_isolation_hyperv_and_runtime(docker, image):
    host = os.uname().release
    r = docker("run", "--rm", "--isolation=hyperv", image, "sh", "-c", "uname -r; exit 6")
    assert r.returncode == 6, r.stderr
    guest = r.stdout.strip()
    assert guest and guest != host
    r = docker("run", "--rm", "--runtime", "nanovisor-vm", image, "uname", "-r")
    assert r.stdout.strip() == guest
    info = json.loads(docker("info", "--format", "{{json .Runtimes}}").stdout)
    assert "nanovisor-vm" in info and "runc" in info


def test_docker_vm_container_lifecycle(docker, image, name):
    r = docker("run", "-d", "--isolation=vm", "--name", name, image, "sh", "-c",
               "echo started; trap 'exit 143' TERM; while true; do sleep 0.1; done")
    assert r.returncode == 0, r.stderr
    try:
        insp = json.loads(docker("inspect", name).stdout)[0]
        assert insp["HostConfig"]["Isolation"] == "vm" and insp["HostConfig"]["Runtime"] == "nanovisor-vm"
        assert docker("exec", name, "uname", "-r").stdout.strip() != os.uname().release
        assert "started" in docker("logs", name).stdout
        assert docker("stop", name).returncode == 0
        assert docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "143"
    finally:
        docker("rm", "-f", name)


def test_docker_py_isolation(client, image):
    out = client.containers.run(image, ["uname", "-r"], isolation="hyperv", remove=True)
    assert out.strip().decode() != os.uname().release
