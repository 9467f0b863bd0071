"""Published ports over IPv6, as dockerd publishes them on a host with IPv6: a port on every address is held on
[::] as well (netd relays it to the container, TCP and UDP), an IPv6 host address binds that address only,
another program cannot take [::]:port meanwhile, and everything is released with the container."""

from __future__ import annotations

import socket
import subprocess
import sys

from nethelpers import Httpd, fetch
from nvtest import wait_for
from test_net_containers import A, B, start

UDP_ECHO = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 5353))\n"
            "while True:\n    d, a = s.recvfrom(2048)\n    s.sendto(b'echo ' + d, a)\n")


def _udp(addr: tuple, payload: bytes) -> bytes:
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        for _ in range(20):  # the echo server may still be starting: UDP just drops until then
            s.sendto(payload, addr)
            try:
                return s.recv(2048)
            except TimeoutError:
                continue
    return b""


def _bindable(proto: int, addr: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6, proto) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if proto == socket.SOCK_STREAM:  # as any server does: a relayed connection's TIME_WAIT must not count
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
        except OSError:
            return False
    return True


def test_ports_on_ipv6_tcp_and_udp(mgr, tmp_path):
    (tmp_path / "index.html").write_text("six\n")
    mgr.create({"Name": "pub6"})
    ns_a, ra = start(mgr, A, "pub6", ports={"80/tcp": [{"HostPort": "18180"}], "5353/udp": [{"HostPort": "18153"}]})
    _, rb = start(mgr, B, "pub6", ports={"80/tcp": [{"HostIp": "::1", "HostPort": "18181"}]})
    assert ra["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18180"}, {"HostIp": "::", "HostPort": "18180"}],
        "5353/udp": [{"HostIp": "0.0.0.0", "HostPort": "18153"}, {"HostIp": "::", "HostPort": "18153"}]}
    assert rb["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "::1", "HostPort": "18181"}]}
    httpd = Httpd(ns_a, tmp_path)
    echo = subprocess.Popen(["nsenter", f"--net={ns_a}", sys.executable, "-c", UDP_ECHO])
    try:
        assert fetch("http://[::1]:18180/") == "six\n"
        assert fetch("http://127.0.0.1:18180/") == "six\n"
        assert _udp(("::1", 18153), b"over six") == b"echo over six"
        assert _udp(("127.0.0.1", 18153), b"over four") == b"echo over four"
        assert not _bindable(socket.SOCK_STREAM, "::", 18180)  # held for the container
        assert not _bindable(socket.SOCK_DGRAM, "::", 18153)
        assert fetch("http://127.0.0.1:18181/").startswith("ERROR")  # B is on the IPv6 loopback only
    finally:
        httpd.stop()
        echo.kill()
        echo.wait()
    mgr.detach(A)
    mgr.detach(B)
    wait_for(lambda: all(_bindable(socket.SOCK_STREAM, "::", p) for p in (18180, 18181))
             and _bindable(socket.SOCK_DGRAM, "::", 18153), timeout=10)
