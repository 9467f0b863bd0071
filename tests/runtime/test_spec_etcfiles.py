"""/etc/hosts and /etc/resolv.conf content as Docker lays it out."""

from __future__ import annotations

import pytest

from nanovisor.errors import InvalidParameter
from nanovisor.runtime.etcfiles import hosts_file, parse_extra_host, resolv_conf


def test_hosts_file_layout():
    text = hosts_file("web", "172.17.0.2", ["db:10.0.0.9", "v6host:::1"], aliases=["web-alias"])
    assert text.splitlines() == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        "10.0.0.9\tdb",
        "::1\tv6host",
        "172.17.0.2\tweb web-alias",
    ]


def test_hosts_file_domain_and_no_ipv6_no_ip():
    assert hosts_file("web", "10.1.1.1", domainname="corp", ipv6=False) == \
        "127.0.0.1\tlocalhost\n10.1.1.1\tweb.corp web\n"
    assert "web" not in hosts_file("web", None)


def test_extra_host_forms():
    assert parse_extra_host("a=1.2.3.4") == ("a", "1.2.3.4")
    assert parse_extra_host("gw:host-gateway") == ("gw", "host-gateway")
    assert parse_extra_host("b:[::2]") == ("b", "::2")
    with pytest.raises(InvalidParameter, match='bad format for add-host: "nohost"'):
        parse_extra_host("nohost")
    with pytest.raises(InvalidParameter, match='invalid IP address in add-host: "x.y"'):
        parse_extra_host("a:x.y")


def test_resolv_conf_drops_loopback_and_falls_back(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("# comment\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
    lines = resolv_conf(host_resolv=str(host)).splitlines()
    assert [line for line in lines if line and not line.startswith("#")] == \
        ["nameserver 8.8.8.8", "nameserver 8.8.4.4", "search lan", "options edns0 trust-ad"]
    assert "nameserver 127.0.0.53" in resolv_conf(host_resolv=str(host), keep_localhost=True)


def test_resolv_conf_overrides(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 192.0.2.1\nsearch lan\noptions ndots:2\n")
    text = resolv_conf(["9.9.9.9"], ["."], ["ndots:5"], host_resolv=str(host))
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body == ["nameserver 9.9.9.9", "options ndots:5"]
    assert "# Overrides: [nameservers search options]" in text
    body = [line for line in resolv_conf(host_resolv=str(host)).splitlines() if line and not line.startswith("#")]
    assert body == ["nameserver 192.0.2.1", "search lan", "options ndots:2"]
