"""Dual-stack user networks (`docker network create --ipv6`) through the docker CLI and docker-py: unique local
subnets only (traffic stays on this machine), an address and a default route for every container, AAAA answers
for names, container-to-container and host-to-container IPv6 traffic, and dockerd's inspect fields."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import uuid

import pytest

SUBNET6 = "fd00:7e57:1::/64"


def _uid() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture
def v6net(docker):
    net = "v6-" + _uid()
    r = docker("network", "create", "--ipv6", "--subnet", "10.125.1.0/24", "--subnet", SUBNET6, net)
    assert r.returncode == 0, r.stderr
    yield net
    docker("network", "rm", net)


def test_dual_stack_addresses_dns_and_traffic(docker, image, v6net, name):
    peer = name + "-peer"
    try:
        r = docker("run", "-d", "--name", name, "--network", v6net, image, "sleep", "600")
        assert r.returncode == 0, r.stderr
        r = docker("run", "-d", "--name", peer, "--network", v6net, "--ip6", "fd00:7e57:1::99", image,
                   "sleep", "600")
        assert r.returncode == 0, r.stderr
        net = json.loads(docker("network", "inspect", v6net).stdout)[0]
        assert net["EnableIPv6"] is True
        assert {c["Subnet"] for c in net["IPAM"]["Config"]} == {"10.125.1.0/24", SUBNET6}
        members = {c["Name"]: c for c in net["Containers"].values()}
        assert members[peer]["IPv6Address"] == "fd00:7e57:1::99/64"
        ep = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout)[v6net]
        mine = ipaddress.ip_address(ep["GlobalIPv6Address"])
        assert mine in ipaddress.ip_network(SUBNET6) and ep["GlobalIPv6PrefixLen"] == 64
        assert ep["IPv6Gateway"] == "fd00:7e57:1::1"
        assert f"{mine}/64" in docker("exec", name, "ip", "-6", "addr", "show", "eth0").stdout
        assert "default via fd00:7e57:1::1" in docker("exec", name, "ip", "-6", "route").stdout
        assert any(line.startswith(f"{mine}\t") for line in docker("exec", name, "cat", "/etc/hosts").stdout.split("\n"))
        r = docker("exec", name, "nslookup", "-type=aaaa", peer)
        assert r.returncode == 0 and "fd00:7e57:1::99" in r.stdout, r.stdout + r.stderr
        r = docker("exec", name, "ping", "-6", "-c", "1", "-W", "2", peer)
        assert r.returncode == 0 and "fd00:7e57:1::99" in r.stdout, r.stdout + r.stderr
        # the host reaches the container through the bridge's gateway address
        r = subprocess.run(["busybox", "ping", "-6", "-c", "1", "-W", "2", str(mine)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        docker("rm", "-f", name, peer)


def test_ipv6_without_subnet_gets_a_ula_64_of_its_own(docker, client):
    names = ["v6auto-" + _uid(), "v6auto-" + _uid()]
    try:
        assert docker("network", "create", "--ipv6", names[0]).returncode == 0
        client.networks.create(names[1], enable_ipv6=True)
        subnets = []
        for net in names:
            attrs = client.networks.get(net).attrs
            assert attrs["EnableIPv6"] is True
            (v6,) = [ipaddress.ip_network(c["Subnet"]) for c in attrs["IPAM"]["Config"] if ":" in c["Subnet"]]
            assert v6.prefixlen == 64 and v6.subnet_of(ipaddress.ip_network("fd00::/8"))
            subnets.append(v6)
        assert not subnets[0].overlaps(subnets[1])
    finally:
        for net in names:
            docker("network", "rm", net)


def test_ipv6_subnets_refused(docker, v6net):
    net = "v6no-" + _uid()
    try:
        r = docker("network", "create", "--ipv6", "--subnet", "2001:db8::/64", net)
        assert r.returncode == 1 and "not a unique local" in r.stderr
        r = docker("network", "create", "--ipv6", "--subnet", "fd00:7e57:1:0:8000::/80", net)
        assert r.returncode == 1
        assert r.stderr.strip() == ("Error response from daemon: invalid pool request: Pool overlaps with other one "
                                    "on this address space")
        r = docker("network", "create", "--subnet", "fd00:7e57:2::/64", net)
        assert r.returncode == 1 and "IPv6 is not enabled" in r.stderr
        assert net not in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    finally:
        docker("network", "rm", net)


def test_ipv6_ip_range_bounds_the_addresses_given(docker, image, name):
    net = "v6rng-" + _uid()
    r = docker("network", "create", "--ipv6", "--subnet", "fd00:7e57:3::/64", "--ip-range", "fd00:7e57:3::100/120",
               net)
    assert r.returncode == 0, r.stderr
    try:
        cfg = json.loads(docker("network", "inspect", "--format", "{{json .IPAM.Config}}", net).stdout)
        assert {"Subnet": "fd00:7e57:3::/64", "Gateway": "fd00:7e57:3::1", "IPRange": "fd00:7e57:3::100/120"} in cfg
        r = docker("run", "--rm", "--name", name, "--network", net, image, "ip", "-6", "addr", "show", "eth0")
        assert r.returncode == 0 and "fd00:7e57:3::100/64" in r.stdout, r.stdout + r.stderr
    finally:
        docker("network", "rm", net)


def test_default_routes_move_to_the_dual_stack_network_when_the_gateway_network_leaves(docker, image, v6net, name):
    first = "v4first-" + _uid()
    assert docker("network", "create", "--subnet", "10.125.9.0/24", first).returncode == 0
    try:
        r = docker("run", "-d", "--name", name, "--network", first, "--network", v6net, image, "sleep", "600")
        assert r.returncode == 0, r.stderr
        assert "default via 10.125.9.1" in docker("exec", name, "ip", "route").stdout
        assert docker("network", "disconnect", first, name).returncode == 0
        assert "default via 10.125.1.1" in docker("exec", name, "ip", "route").stdout
        assert "default via fd00:7e57:1::1" in docker("exec", name, "ip", "-6", "route").stdout
    finally:
        docker("rm", "-f", name)
        docker("network", "rm", first)
