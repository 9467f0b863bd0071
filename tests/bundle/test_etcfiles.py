"""/etc/hosts and /etc/resolv.conf content as Docker lays it out, and the one --add-host validation that
both the network manager and the bundle stage go through."""

from __future__ import annotations

import pytest

from nanovisor.bundle.etcfiles import (
    EMBEDDED_DNS,
    ExtraHost,
    host_hosts,
    hosts_file,
    parse_extra_host,
    parse_extra_hosts,
    resolv_conf,
    upstreams,
)
from nanovisor.errors import InvalidParameter


def test_hosts_file_layout():
    text = hosts_file("web", ["172.17.0.2"], parse_extra_hosts(["db:10.0.0.9", "v6host:::1"]),
                      aliases=["web-alias"])
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


def test_hosts_file_one_line_per_network_address_and_domain():
    assert hosts_file("web", ["10.1.1.1", "10.2.2.2"], domainname="corp", ipv6=False) == \
        "127.0.0.1\tlocalhost\n10.1.1.1\tweb.corp web\n10.2.2.2\tweb.corp web\n"
    assert "web" not in hosts_file("web", ())


def test_host_networking_keeps_the_host_file(tmp_path):
    host = tmp_path / "hosts"
    host.write_text("127.0.0.1\tlocalhost\n192.0.2.7\tbuildhost")
    assert host_hosts([ExtraHost("10.0.0.9", "db")], str(host)) == \
        "127.0.0.1\tlocalhost\n192.0.2.7\tbuildhost\n10.0.0.9\tdb\n"


def test_extra_host_forms():
    assert parse_extra_host("a=1.2.3.4") == ExtraHost("1.2.3.4", "a")
    assert parse_extra_host("gw:host-gateway") == ("host-gateway", "gw")
    assert parse_extra_host("b:[::2]") == ("::2", "b")
    assert parse_extra_host("c:2001:db8::1") == ("2001:db8::1", "c")
    assert parse_extra_hosts(None) == []


@pytest.mark.parametrize("entry,message", [
    ("nohost", 'bad format for add-host: "nohost"'),
    (":1.2.3.4", 'bad format for add-host: ":1.2.3.4"'),
    ("name:", 'bad format for add-host: "name:"'),
    ("a:x.y", 'invalid IP address in add-host: "x.y"'),
    ("a=300.1.1.1", 'invalid IP address in add-host: "300.1.1.1"'),
])
def test_extra_host_refused_with_dockers_words(entry, message):
    with pytest.raises(InvalidParameter, match=message):
        parse_extra_hosts(["ok:10.0.0.1", entry])


def _body(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_resolv_conf_drops_loopback_and_falls_back(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("# comment\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
    assert _body(resolv_conf(host_resolv=str(host))) == \
        ["nameserver 8.8.8.8", "nameserver 8.8.4.4", "search lan", "options edns0 trust-ad"]
    assert "nameserver 127.0.0.53" in resolv_conf(host_resolv=str(host), keep_localhost=True)
    assert "nameserver 2001:4860:4860::8888" in resolv_conf(host_resolv=str(host), ipv6=True)


def test_resolv_conf_overrides(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 192.0.2.1\nsearch lan\noptions ndots:2\n")
    assert _body(resolv_conf(["9.9.9.9"], ["."], ["ndots:5"], host_resolv=str(host))) == \
        ["nameserver 9.9.9.9", "options ndots:5"]
    assert _body(resolv_conf(host_resolv=str(host))) == ["nameserver 192.0.2.1", "search lan", "options ndots:2"]


def test_resolv_conf_embedded_server_on_user_networks(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nsearch lan\noptions ndots:2 edns0\n")
    text = resolv_conf(["9.9.9.9"], host_resolv=str(host), embedded=True)
    assert text == f"nameserver {EMBEDDED_DNS}\nsearch lan\noptions edns0 ndots:0\n"
    assert resolv_conf(options=["ndots:3"], host_resolv=str(host), embedded=True).endswith("options ndots:3\n")
    assert upstreams(["9.9.9.9"], str(host)) == ["9.9.9.9"]
    assert upstreams([], str(host)) == ["127.0.0.53"]  # the forwarder runs on the host: loopback is fine
