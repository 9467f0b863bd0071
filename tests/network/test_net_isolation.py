"""Isolation between bridge networks, both directions, whatever order the networks (the default bridge
included) came into being in; internal networks: reachable inside, no way out. The engine here masquerades
outbound traffic (as a real host does), which is what once let an older network reach a newer one."""

from __future__ import annotations

import itertools
import subprocess

import pytest
from nethelpers import in_ns

from nanovisor.network import NetworkManager
from nanovisor.paths import Paths
from nanovisor.store.db import Database


@pytest.fixture
def mgr(tmp_path):
    """Outbound on (the default outside tests): every bridge has an accept-outbound rule."""
    paths = Paths.for_root(tmp_path / "root")
    paths.ensure()
    return NetworkManager(paths, Database(paths.db), outbound=True, dns_forward=False)


def _cid(name: str, n: int = 0) -> str:
    return (name.encode().hex() + f"{n:02d}" + "0" * 64)[:64]


def _start(mgr, network: str, n: int = 0) -> tuple[str, str]:
    cid = _cid(network, n)
    ns = mgr.create_netns(cid)
    res = mgr.attach(cid, ns, {"NetworkMode": network}, {"EndpointsConfig": {}}, cid[:12], {}, name=cid[:12])
    return ns, res["NetworkSettings"]["Networks"][network]["IPAddress"]


def _reach(pairs: list[tuple[str, str]]) -> list[bool]:
    """One ping per (from netns, to address), all at once: blocked ones cost their timeout only once."""
    procs = [subprocess.Popen(["nsenter", f"--net={ns}", "busybox", "ping", "-c", "1", "-W", "2", ip],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for ns, ip in pairs]
    return [p.wait(timeout=30) == 0 for p in procs]


@pytest.mark.parametrize("order", [("bridge", "one", "two", "three"), ("three", "one", "bridge", "two"),
                                   ("two", "three", "one", "bridge")])
def test_every_pair_of_networks_isolated_both_ways(mgr, order):
    boxes: dict[str, list[tuple[str, str]]] = {}
    for name in order:
        if name != "bridge":
            mgr.create({"Name": name})
        boxes[name] = [_start(mgr, name, 0), _start(mgr, name, 1)]
    pairs, expect = [], []
    for a, b in itertools.permutations(order, 2):
        pairs.append((boxes[a][0][0], boxes[b][0][1]))
        expect.append(False)
    for name in order:  # same network: reachable
        pairs.append((boxes[name][0][0], boxes[name][1][1]))
        expect.append(True)
    got = _reach(pairs)
    labels = [f"{a}->{b}" for a, b in itertools.permutations(order, 2)] + [f"{n}->{n}" for n in order]
    assert dict(zip(labels, got)) == dict(zip(labels, expect))


def test_internal_network_reachable_inside_with_no_way_out(mgr):
    mgr.create({"Name": "private", "Internal": True})
    mgr.create({"Name": "public"})
    (ns_a, ip_a), (ns_b, ip_b) = _start(mgr, "private", 0), _start(mgr, "private", 1)
    ns_p, ip_p = _start(mgr, "public", 0)
    assert "default" not in in_ns(ns_a, "ip", "route").stdout
    gateway = mgr.inspect("private")["IPAM"]["Config"][0]["Gateway"]
    # a root process inside could add the route itself: the host still forwards nothing out of it
    assert in_ns(ns_a, "ip", "route", "add", "default", "via", gateway).returncode == 0
    assert _reach([(ns_a, ip_b), (ns_b, ip_a), (ns_a, ip_p), (ns_p, ip_a)]) == [True, True, False, False]
