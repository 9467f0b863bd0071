"""The bundle stage as a user sees it: the /etc files a container gets on each kind of network come from the
one generator, with the one --add-host validation, whichever path (network manager or bundle) writes them."""

from __future__ import annotations

import pytest
from nvtest import IMAGE

NETWORKS = ["none", "host", "bridge"]


@pytest.mark.parametrize("network", NETWORKS)
def test_add_host_and_hostname_on_every_network(nv, network):
    r = nv("run", "--rm", "--network", network, "--hostname", "stage", "--add-host", "db:10.0.0.9",
           "--add-host", "v6=[2001:db8::1]", IMAGE, "sh", "-c", "cat /etc/hosts; echo; cat /etc/hostname")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "10.0.0.9\tdb" in lines and "2001:db8::1\tv6" in lines
    assert lines[-1] == "stage"


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("entry,message", [("nohost", 'bad format for add-host: "nohost"'),
                                           ("db:x.y", 'invalid IP address in add-host: "x.y"')])
def test_bad_add_host_refused_the_same_on_every_network(nv, network, entry, message):
    r = nv("run", "--rm", "--network", network, "--add-host", entry, IMAGE, "true")
    assert r.returncode == 125 and message in r.stderr, r.stderr


def test_dns_options_reach_resolv_conf(nv):
    r = nv("run", "--rm", "--network", "none", "--dns", "192.0.2.53", "--dns-search", "corp.example",
           "--dns-option", "ndots:3", IMAGE, "cat", "/etc/resolv.conf")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["nameserver 192.0.2.53", "search corp.example", "options ndots:3"]


def test_container_network_shares_the_other_containers_files(nv):
    holder = nv("run", "-d", "--add-host", "shared:10.1.2.3", IMAGE, "sleep", "1000").stdout.strip()
    try:
        r = nv("run", "--rm", "--network", f"container:{holder}", IMAGE, "cat", "/etc/hosts")
        assert r.returncode == 0, r.stderr
        assert "10.1.2.3\tshared" in r.stdout.splitlines()
    finally:
        nv("rm", "-f", holder)
