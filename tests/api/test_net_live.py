"""Networks of a running container, in every isolation (the conformance style: one check per registered
runtime), through the real docker CLI against `nanovisor serve`:

* a dual-stack (IPv6, unique local) network at start: the container has its IPv6 address and default route
  and reaches a peer over IPv6 (for a VM: inside the guest);
* `docker network connect` while it runs takes effect at once: it gets the network's IPv4 and IPv6 addresses,
  peers reach it by address, name and alias, it reaches them by name; `docker network disconnect` takes the
  addresses away and peers no longer reach it; connecting again works;
* a published TCP port answers on the IPv6 loopback [::1] as well as on 127.0.0.1, as dockerd's does on a
  host with IPv6 (`docker port` lists [::]).

Traffic stays on loopback and the test's own bridges (unique local IPv6 subnets)."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from apihelpers import free_port
from nvtest import runtime_params, wait_for


@pytest.fixture(params=runtime_params())
def iso(request):
    return request.param


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as resp:
        return resp.read().decode()


def _answers(url: str) -> bool:
    try:
        return _get(url) == "live\n"
    except OSError:
        return False


def test_connect_disconnect_running_container_ipv6_and_published_port(docker, image, name, iso):
    first, second = "live1-" + _uid(), "live2-" + _uid()
    nets = ((first, "10.127.1.0/24", "fd00:7e57:41::/64"), (second, "10.127.2.0/24", "fd00:7e57:42::/64"))
    for net, v4, v6 in nets:
        r = docker("network", "create", "--ipv6", "--subnet", v4, "--subnet", v6, net)
        assert r.returncode == 0, r.stderr
    p1, p2 = name + "-p1", name + "-p2"
    port, port6 = free_port(), free_port()
    try:
        for peer, net in ((p1, first), (p2, second)):
            r = docker("run", "-d", "--name", peer, "--network", net, image, "sleep", "600")
            assert r.returncode == 0, r.stderr
        r = docker("run", "-d", "--name", name, "--runtime", iso, "--network", first, "-p", f"{port}:80",
                   "-p", f"[::1]:{port6}:80", image,
                   "sh", "-c", "mkdir -p /www && echo live > /www/index.html && exec httpd -f -p 80 -h /www")
        assert r.returncode == 0, r.stderr

        # IPv6 on the network it started with
        ep = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout)[first]
        v6 = ep["GlobalIPv6Address"]
        assert v6.startswith("fd00:7e57:41:")
        assert f"{v6}/64" in docker("exec", name, "ip", "-6", "addr").stdout
        assert "default via fd00:7e57:41::1" in docker("exec", name, "ip", "-6", "route").stdout
        r = docker("exec", name, "ping", "-6", "-c", "1", "-W", "5", p1)
        assert r.returncode == 0, r.stdout + r.stderr

        # a published port on both loopbacks
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/"))
        assert _get(f"http://[::1]:{port}/") == "live\n"
        assert f"[::]:{port}" in docker("port", name, "80").stdout
        assert _get(f"http://[::1]:{port6}/") == "live\n"  # bound to the IPv6 loopback only
        assert not _answers(f"http://127.0.0.1:{port6}/")

        # connect while running: addresses, both directions, name and alias
        r = docker("network", "connect", "--alias", "live-alias", second, name)
        assert r.returncode == 0, r.stderr
        ep2 = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout)[second]
        ip2, ip2v6 = ep2["IPAddress"], ep2["GlobalIPv6Address"]
        assert ip2.startswith("10.127.2.") and ip2v6.startswith("fd00:7e57:42:")
        addrs = docker("exec", name, "ip", "addr").stdout
        assert f"{ip2}/24" in addrs and f"{ip2v6}/64" in addrs and ep2["MacAddress"] in addrs
        for target in (ip2, name, "live-alias"):
            r = docker("exec", p2, "ping", "-4", "-c", "1", "-W", "5", target)
            assert r.returncode == 0 and ip2 in r.stdout, r.stdout + r.stderr
        r = docker("exec", p2, "ping", "-6", "-c", "1", "-W", "5", ip2v6)
        assert r.returncode == 0, r.stdout + r.stderr
        r = docker("exec", p2, "wget", "-qO-", "http://live-alias/")
        assert r.stdout == "live\n", r.stderr
        r = docker("exec", name, "ping", "-6", "-c", "1", "-W", "5", p2)  # by name, AAAA
        assert r.returncode == 0, r.stdout + r.stderr
        # the first network still works, the port too
        r = docker("exec", p1, "ping", "-4", "-c", "1", "-W", "5", name)
        assert r.returncode == 0, r.stdout + r.stderr

        # disconnect while running: the addresses go, the peer no longer reaches it
        r = docker("network", "disconnect", second, name)
        assert r.returncode == 0, r.stderr
        addrs = docker("exec", name, "ip", "addr").stdout
        assert ip2 not in addrs and ip2v6 not in addrs
        assert docker("exec", p2, "ping", "-c", "1", "-W", "1", ip2).returncode != 0
        assert second not in docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout

        # and connect again
        assert docker("network", "connect", second, name).returncode == 0
        ip3 = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}",
                                name).stdout)[second]["IPAddress"]
        r = docker("exec", p2, "ping", "-4", "-c", "1", "-W", "5", name)
        assert r.returncode == 0 and ip3 in r.stdout, r.stdout + r.stderr
        assert _get(f"http://[::1]:{port}/") == "live\n"
    finally:
        docker("rm", "-f", name, p1, p2)
        for net, _, _ in nets:
            docker("network", "rm", net)


def test_connect_from_the_default_bridge_brings_names(docker, image, name, iso):
    """A container started on the default bridge (no embedded DNS) and connected to a user network while it
    runs resolves that network's names from then on, as dockerd's do."""
    net = "live3-" + _uid()
    assert docker("network", "create", "--subnet", "10.127.3.0/24", net).returncode == 0
    peer = name + "-peer"
    try:
        r = docker("run", "-d", "--name", peer, "--network", net, image, "sleep", "600")
        assert r.returncode == 0, r.stderr
        r = docker("run", "-d", "--name", name, "--runtime", iso, image, "sleep", "600")
        assert r.returncode == 0, r.stderr
        assert docker("network", "connect", net, name).returncode == 0
        # rewritten in place; a VM's virtio-fs may show it a moment later
        wait_for(lambda: "nameserver 127.0.0.11" in docker("exec", name, "cat", "/etc/resolv.conf").stdout)
        r = docker("exec", name, "ping", "-c", "1", "-W", "5", peer)
        assert r.returncode == 0 and "10.127.3." in r.stdout, r.stdout + r.stderr
    finally:
        docker("rm", "-f", name, peer)
        docker("network", "rm", net)


def test_five_networks_live_and_after_a_restart(docker, image, name, iso):
    """More networks than a microVM has NIC slots (4): connected live, and still all there after a restart
    (the VM boots with four NICs and the fifth network on the first one)."""
    nets = [f"live5{i}-" + _uid() for i in range(5)]
    peer = name + "-peer"
    try:
        for i, net in enumerate(nets):
            assert docker("network", "create", "--subnet", f"10.127.{10 + i}.0/24", net).returncode == 0
        r = docker("run", "-d", "--name", peer, "--network", nets[-1], image, "sleep", "600")
        assert r.returncode == 0, r.stderr
        r = docker("run", "-d", "--name", name, "--runtime", iso, "--network", nets[0], image, "sleep", "600")
        assert r.returncode == 0, r.stderr
        for net in nets[1:]:
            r = docker("network", "connect", net, name)
            assert r.returncode == 0, r.stderr
        for restarted in (False, True):
            if restarted:
                assert docker("restart", "-t", "1", name).returncode == 0
            eps = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout)
            addrs = docker("exec", name, "ip", "addr").stdout
            assert all(f"{eps[net]['IPAddress']}/24" in addrs for net in nets), addrs
            r = docker("exec", peer, "ping", "-c", "1", "-W", "5", name)
            assert r.returncode == 0 and eps[nets[-1]]["IPAddress"] in r.stdout, r.stdout + r.stderr
    finally:
        docker("rm", "-f", name, peer)
        for net in nets:
            docker("network", "rm", net)
