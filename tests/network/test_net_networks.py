"""The Docker network API of NetworkManager: shapes, moby's errors, and the kernel objects behind it."""

from __future__ import annotations

import json

import pytest

from nanovisor.errors import Conflict, Forbidden, InvalidParameter, NotFound
from nanovisor.network import links, nft


def test_create_inspect_list_remove(mgr):
    nid = mgr.create({"Name": "app", "Labels": {"team": "a"}})["Id"]
    net = mgr.inspect("app")
    assert net["Id"] == nid and net["Driver"] == "bridge" and net["Scope"] == "local"
    assert net["Options"] == {}  # only options the user gave (compose compares them)
    bridge = mgr.get("app").bridge
    assert bridge in links.link_names()
    assert net["IPAM"]["Config"][0]["Gateway"].endswith(".1")
    assert mgr.inspect(nid[:12])["Name"] == "app"
    names = {n["Name"] for n in mgr.list()}
    assert {"bridge", "host", "none", "app"} <= names
    assert [n["Name"] for n in mgr.list({"label": ["team=a"]})] == ["app"]
    assert {n["Name"] for n in mgr.list({"type": ["builtin"]})} == {"bridge", "host", "none"}
    assert nft.list_table(mgr.table)  # rules exist while a bridge does
    mgr.remove("app")
    assert bridge not in links.link_names()
    assert nft.list_table(mgr.table) == []  # last network gone: table gone
    with pytest.raises(NotFound, match="network app not found"):
        mgr.inspect("app")


def test_user_subnet_gateway_and_errors(mgr):
    mgr.create({"Name": "a", "IPAM": {"Config": [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.254"}]}})
    assert mgr.inspect("a")["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.254"}]
    with pytest.raises(Conflict, match="network with name a already exists"):
        mgr.create({"Name": "a"})
    with pytest.raises(Forbidden, match="Pool overlaps with other one on this address space"):
        mgr.create({"Name": "b", "IPAM": {"Config": [{"Subnet": "10.77.0.128/25"}]}})
    with pytest.raises(InvalidParameter):
        mgr.create({"Name": "c", "IPAM": {"Config": [{"Subnet": "10.78.0.0/24", "Gateway": "10.79.0.1"}]}})
    with pytest.raises(NotFound, match="network nope not found"):
        mgr.remove("nope")
    with pytest.raises(Forbidden, match="bridge is a pre-defined network and cannot be removed"):
        mgr.remove("bridge")
    assert {n["Name"] for n in mgr.list()} == {"a", "bridge", "host", "none"}  # nothing half-created


def test_active_endpoints_block_remove_and_prune(mgr):
    mgr.create({"Name": "busy"})
    mgr.create({"Name": "idle"})
    ns = mgr.create_netns("c" * 64)
    mgr.attach("c" * 64, ns, {"NetworkMode": "busy"}, {}, "h", {})
    with pytest.raises(Forbidden, match="has active endpoints"):
        mgr.remove("busy")
    assert mgr.prune() == {"NetworksDeleted": ["idle"]}
    assert list(mgr.inspect("busy")["Containers"]) == ["c" * 64]


def test_enable_ip_masquerade_false_leaves_no_outbound_masquerade(tmp_path):
    from nanovisor.network import NetworkManager
    from nanovisor.paths import Paths
    from nanovisor.store.db import Database

    paths = Paths.for_root(tmp_path / "outroot")
    paths.ensure()
    mgr = NetworkManager(paths, Database(paths.db), outbound=True, dns_forward=False)
    try:
        mgr.create({"Name": "masq", "IPAM": {"Config": [{"Subnet": "10.71.0.0/24"}]}})
        mgr.create({"Name": "plain", "IPAM": {"Config": [{"Subnet": "10.72.0.0/24"}]},
                    "Options": {"com.docker.network.bridge.enable_ip_masquerade": "false"}})

        def outbound_masq(subnet: str) -> bool:
            addr = subnet.split("/")[0]
            return any("masquerade" in json.dumps(o) and f'"addr": "{addr}"' in json.dumps(o)
                       and '"op": "!="' in json.dumps(o) for o in nft.list_table(mgr.table) if "rule" in o)
        assert outbound_masq("10.71.0.0/24")
        assert not outbound_masq("10.72.0.0/24")
    finally:
        mgr.teardown()


def test_driver_options_parsed_with_moby_words(mgr):
    with pytest.raises(InvalidParameter, match=r"^failed to parse com.docker.network.driver.mtu value: abc "
                       r"\(strconv.Atoi: parsing \"abc\": invalid syntax\)$"):
        mgr.create({"Name": "m", "Options": {"com.docker.network.driver.mtu": "abc"}})
    with pytest.raises(InvalidParameter, match="^invalid MTU number: 10$"):
        mgr.create({"Name": "m", "Options": {"com.docker.network.driver.mtu": "10"}})
    with pytest.raises(InvalidParameter, match="^failed to parse com.docker.network.bridge.enable_icc value: maybe"):
        mgr.create({"Name": "m", "Options": {"com.docker.network.bridge.enable_icc": "maybe"}})
    mgr.create({"Name": "m", "Options": {"com.docker.network.bridge.enable_ip_masquerade": "0"}})
    assert mgr.get("m").spec["Masquerade"] is False
    assert {n["Name"] for n in mgr.list()} == {"m", "bridge", "host", "none"}
