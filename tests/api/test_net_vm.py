"""The endpoint features of a process container hold in a VM container too (the same bundle and namespace, a
guest NIC per veth): several networks at create with a fixed address, alias and MAC, and a legacy link's
variables and /etc/hosts line. IPv6 inside the guest, `network connect` of a running VM and published ports
over IPv6 are in test_net_live.py (every isolation)."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.vm


def test_vm_container_endpoints_and_link(docker, image, name):
    a, b = "vma-" + uuid.uuid4().hex[:6], "vmb-" + uuid.uuid4().hex[:6]
    child = name + "-kid"
    for net, subnet in ((a, "10.126.1.0/24"), (b, "10.126.2.0/24")):
        assert docker("network", "create", "--subnet", subnet, net).returncode == 0
    try:
        r = docker("run", "-d", "--name", child, "--expose", "6379", "-e", "FOO=bar", image, "sleep", "600")
        assert r.returncode == 0, r.stderr
        r = docker("run", "--rm", "--isolation=vm", "--network", f"name={a},ip=10.126.1.50,mac-address=02:00:00:00:06:01",
                   "--network", b, image, "sh", "-c", "ip -o addr show; ip -o link show")
        assert r.returncode == 0, r.stderr
        assert "10.126.1.50/24" in r.stdout and "10.126.2." in r.stdout
        assert "02:00:00:00:06:01" in r.stdout
        r = docker("run", "--rm", "--isolation=vm", "--link", f"{child}:db", image, "sh", "-c",
                   "echo $DB_PORT $DB_ENV_FOO; grep -w db /etc/hosts")
        assert r.returncode == 0, r.stderr
        ip = docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", child).stdout.strip()
        lines = r.stdout.splitlines()
        assert lines[0] == f"tcp://{ip}:6379 bar"
        assert lines[1].startswith(f"{ip}\tdb ")
    finally:
        docker("rm", "-f", child)
        docker("network", "rm", a, b)
