"""Containers (real namespaces, real busybox processes) on bridge networks: addresses, DNS by name,
published ports incl. hairpin and host loopback, isolation, cleanup and restore."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from nethelpers import Httpd, fetch, in_ns

from nanovisor.errors import Forbidden, InvalidParameter, SystemError_
from nanovisor.network import links, nft, nsutil

A, B, C = "a" * 64, "b" * 64, "c" * 64


def start(mgr, cid, mode="default", ports=None, name=None, endpoints=None, exposed=None, publish_all=False):
    ns = mgr.create_netns(cid)
    hc = {"NetworkMode": mode, "PortBindings": ports or {}, "PublishAllPorts": publish_all}
    res = mgr.attach(cid, ns, hc, {"EndpointsConfig": endpoints or {}}, name or cid[:12], exposed or {},
                     name=name)
    return ns, res


def nslookup(ns: str, name: str) -> list[str]:
    out = in_ns(ns, "busybox", "nslookup", name, "127.0.0.11").stdout
    return [line.split()[-1] for line in out.splitlines()[2:] if line.startswith("Address")]


def test_dns_by_name_and_alias_scoped_to_network(mgr, tmp_path):
    mgr.create({"Name": "front"})
    mgr.create({"Name": "back"})
    ns_a, ra = start(mgr, A, "front", name="web", endpoints={"front": {"Aliases": ["www"]}})
    ns_b, rb = start(mgr, B, "front", name="client")
    ns_c, _ = start(mgr, C, "back", name="other")
    ip_a = ra["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    assert ra["resolv_conf"].startswith("nameserver 127.0.0.11\n")
    assert f"{ip_a}\tweb" in ra["hosts"]
    assert nslookup(ns_b, "web") == [ip_a]
    assert nslookup(ns_b, "www") == [ip_a]
    assert nslookup(ns_b, "web.front") == [ip_a]
    assert nslookup(ns_b, A[:12]) == [ip_a]
    assert nslookup(ns_c, "web") == []           # not on a shared network
    httpd = Httpd(ns_a, tmp_path)
    (tmp_path / "index.html").write_text("hello\n")
    try:
        assert fetch(f"http://{ip_a}/", ns_b) == "hello\n"
        assert fetch(f"http://{ip_a}/", ns_c).startswith("ERROR")  # networks are isolated
    finally:
        httpd.stop()


def test_published_ports_host_loopback_hairpin(mgr, tmp_path):
    (tmp_path / "index.html").write_text("published\n")
    mgr.create({"Name": "pub"})
    ns_a, ra = start(mgr, A, "pub", ports={"80/tcp": [{"HostIp": "", "HostPort": "18080"}],
                                          "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18081"}]},
                     exposed={"80/tcp": {}, "81/tcp": {}, "82/tcp": {}})
    ns_b, _ = start(mgr, B, "pub")
    assert ra["NetworkSettings"]["Ports"] == {  # on every address: IPv6 too, as dockerd on a host with IPv6
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}, {"HostIp": "::", "HostPort": "18080"}],
        "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18081"}], "82/tcp": None}
    gw = ra["NetworkSettings"]["Networks"]["pub"]["Gateway"]
    h80, h81 = Httpd(ns_a, tmp_path, 80), Httpd(ns_a, tmp_path, 81)
    try:
        assert fetch("http://127.0.0.1:18080/") == "published\n"       # host -> localhost (route_localnet)
        assert fetch(f"http://{gw}:18080/") == "published\n"           # host -> host address
        assert fetch("http://127.0.0.1:18081/") == "published\n"       # bound to 127.0.0.1 only
        assert fetch(f"http://{gw}:18081/").startswith("ERROR")
        assert fetch(f"http://{gw}:18080/", ns_b) == "published\n"     # hairpin from a neighbour
        assert fetch(f"http://{gw}:18080/", ns_a) == "published\n"     # hairpin to itself
        assert fetch("http://127.0.0.1:18080/", ns_b).startswith("ERROR")  # container's own loopback
    finally:
        h80.stop()
        h81.stop()
    mgr.detach(A)
    assert _publish_rules(mgr) == []
    assert fetch("http://127.0.0.1:18080/").startswith("ERROR")


def test_publish_all_and_port_conflicts(mgr):
    _, ra = start(mgr, A, exposed={"80/tcp": {}, "53/udp": {}}, publish_all=True)
    ports = ra["NetworkSettings"]["Ports"]
    assert int(ports["80/tcp"][0]["HostPort"]) > 1024 and int(ports["53/udp"][0]["HostPort"]) > 1024
    start(mgr, B, ports={"80/tcp": [{"HostPort": "18090"}]})
    with pytest.raises(SystemError_, match="Bind for 0.0.0.0:18090 failed: port is already allocated"):
        start(mgr, C, ports={"80/tcp": [{"HostPort": "18090"}]})
    assert mgr.store.endpoints(container_id=C) == []          # nothing half-created
    assert not any(n.startswith("nv") and len(n) == 14 and n not in _veths(mgr) for n in links.link_names())
    # a port held by a host program is refused as well
    import socket
    with socket.socket() as s:
        s.bind(("0.0.0.0", 18091))
        s.listen()
        with pytest.raises(SystemError_, match="port is already allocated"):
            start(mgr, C, ports={"80/tcp": [{"HostPort": "18091"}]})
    # ranges pick the first free port
    _, rc = start(mgr, C, ports={"80/tcp": [{"HostPort": "18090-18092"}]})
    assert rc["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == "18091"


def _rules(mgr) -> list[dict]:
    """The table's rules without nft's handles (which change each time the table is replaced)."""
    out = []
    for obj in nft.list_table(mgr.table):
        kind, body = next(iter(obj.items()))
        out.append((kind, {k: v for k, v in body.items() if k != "handle"}))
    return out


def _publish_rules(mgr) -> list:
    return [b for k, b in _rules(mgr) if k == "rule" and b["chain"] == "publish"]


def _veths(mgr) -> set[str]:
    return {ep.spec["HostIf"] for ep in mgr.store.endpoints()}


def test_static_ip_internal_network_and_none(mgr):
    mgr.create({"Name": "fixed", "Internal": True, "IPAM": {"Config": [{"Subnet": "10.88.0.0/24"}]}})
    ns_a, ra = start(mgr, A, "fixed", endpoints={"fixed": {"IPAMConfig": {"IPv4Address": "10.88.0.50"}}})
    assert ra["NetworkSettings"]["Networks"]["fixed"]["IPAddress"] == "10.88.0.50"
    assert "default" not in in_ns(ns_a, "ip", "route").stdout          # internal: no way out
    with pytest.raises(Forbidden, match="Address already in use"):
        start(mgr, B, "fixed", endpoints={"fixed": {"IPAMConfig": {"IPv4Address": "10.88.0.50"}}})
    assert not os.path.exists(mgr.netns_path(B)) or mgr.store.endpoints(container_id=B) == []
    mgr.delete_netns(B)
    with pytest.raises(InvalidParameter, match="user configured subnets"):
        start(mgr, B, endpoints={"bridge": {"IPAMConfig": {"IPv4Address": "172.17.0.9"}}})
    mgr.delete_netns(B)
    ns_c, rc = start(mgr, C, "none")
    assert len(in_ns(ns_c, "ip", "-o", "link").stdout.splitlines()) == 1  # lo only
    assert list(rc["NetworkSettings"]["Networks"]) == ["none"]


def test_connect_disconnect_running(mgr, tmp_path):
    mgr.create({"Name": "one"})
    mgr.create({"Name": "two"})
    ns_a, _ = start(mgr, A, "one", name="alpha")
    ns_b, rb = start(mgr, B, "two", name="beta")
    assert nslookup(ns_a, "beta") == []
    res = mgr.connect("two", A, {"Aliases": ["a2"]})
    assert set(res["NetworkSettings"]["Networks"]) == {"one", "two"}
    assert "eth1" in links.ns_links(__import__("pathlib").Path(ns_a))
    assert nslookup(ns_b, "a2") == [res["NetworkSettings"]["Networks"]["two"]["IPAddress"]]
    assert nslookup(ns_a, "beta") == [rb["NetworkSettings"]["Networks"]["two"]["IPAddress"]]
    with pytest.raises(Forbidden, match="already exists in network two"):
        mgr.connect("two", A)
    res = mgr.disconnect("one", A)
    assert set(res["NetworkSettings"]["Networks"]) == {"two"}
    assert "default via" in in_ns(ns_a, "ip", "route").stdout          # gateway moved to 'two'
    assert mgr.inspect("one")["Containers"] == {}


def test_detach_cleans_and_restore_is_idempotent(mgr):
    mgr.create({"Name": "r"})
    ns_a, ra = start(mgr, A, "r", name="web", ports={"80/tcp": [{"HostPort": "18100"}]})
    ns_b, _ = start(mgr, B, "r", name="cli")
    before = _rules(mgr)
    assert len(_publish_rules(mgr)) == 1
    mgr.restore()
    mgr.restore()
    assert _rules(mgr) == before                   # no duplicate rules
    # netd dies (e.g. killed): restore brings DNS back
    pid = mgr.netd.pid
    os.kill(pid, signal.SIGKILL)
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
    (mgr.paths.run / "netd.sock").unlink()
    mgr.restore()
    assert nslookup(ns_b, "web") == [ra["NetworkSettings"]["Networks"]["r"]["IPAddress"]]
    # a container's namespace vanished (host reboot): restore releases its endpoint and ports
    nsutil.delete(__import__("pathlib").Path(ns_a))
    mgr.restore()
    assert list(mgr.inspect("r")["Containers"]) == [B]
    assert "18100" not in str(nft.list_table(mgr.table))
    mgr.detach(B)
    mgr.detach(B)                                                  # idempotent
    mgr.delete_netns(B)
    assert mgr.store.endpoints() == [] and mgr.store.ports() == []
    assert not any(len(n) == 14 and n.startswith("nv") for n in links.link_names())
    assert not os.listdir(mgr.paths.netns)


def test_teardown_leaves_nothing(mgr):
    mgr.create({"Name": "t"})
    start(mgr, A, "t")
    start(mgr, B, ports={"80/tcp": [{"HostPort": "18110"}]})
    pid = mgr.netd.pid
    assert pid
    mgr.teardown()
    assert links.link_names() == {"lo"}
    assert nft.list_table(mgr.table) == []
    assert mgr.netd.pid is None
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0


def test_internal_only_container_forwards_no_dns_upstream(tmp_path):
    """dockerd 26+: names a container on internal networks only asks for are not relayed from the host."""
    from nanovisor.network import NetworkManager
    from nanovisor.paths import Paths
    from nanovisor.store.db import Database

    paths = Paths.for_root(tmp_path / "fwdroot")
    paths.ensure()
    mgr = NetworkManager(paths, Database(paths.db), outbound=False, dns_forward=True)
    try:
        mgr.create({"Name": "inside", "Internal": True})
        mgr.create({"Name": "outside"})
        for cid, net in ((A, "inside"), (B, "outside")):
            ns = mgr.create_netns(cid)
            mgr.attach(cid, ns, {"NetworkMode": net, "Dns": ["127.0.0.1"]}, {}, cid[:12], {}, name=cid[:5])

        def upstreams() -> dict:
            return mgr.netd.request({"op": "list"}, spawn=False)["upstreams"]
        assert upstreams() == {A: [], B: ["127.0.0.1"]}
        mgr.connect("outside", A)
        assert upstreams()[A] == ["127.0.0.1"]
    finally:
        mgr.teardown()
