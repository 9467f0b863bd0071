"""VM containers on the engine's networks, through the real CLI: the same address, name, published ports and
DNS as a process container (tap + tc redirect in the container's namespace, see runtime/vm/net.py).

Traffic goes only to loopback and to containers on the bridge this test's engine created (run-tests.sh puts the
whole run in its own network namespace; nvtest turns outbound NAT and DNS forwarding off)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from nvtest import IMAGE

from nanovisor.runtime.vm import guest

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(guest.artifacts() is None,
                       reason="nano guest not built: python -m nanovisor.runtime.vm.guest build"),
]

SERVE = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture
def net(nv):
    """A user-defined network of its own; every container the test named is removed afterwards."""
    name = f"vmnet-{uuid.uuid4().hex[:8]}"
    nv("network", "create", name, check=True)
    made: list[str] = []
    yield name, made
    if made:
        nv("rm", "-f", *made, timeout=300)
    nv("network", "rm", name)


def detached(nv, made, net, name, iso, *args):
    made.append(name)
    return nv("run", "-d", "--name", name, "--network", net, f"--isolation={iso}", *args, check=True,
              timeout=180).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_fetch(url: str) -> str:
    r = subprocess.run(["timeout", "10", "busybox", "wget", "-qO-", url], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else f"ERROR {r.returncode}: {r.stderr.strip()}"


def in_netns(netns: str) -> list[int]:
    """Pids of the processes living in the network namespace bound at netns (QEMU, for a VM container)."""
    want = f"net:[{os.stat(netns).st_ino}]"
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if os.readlink(p / "ns" / "net") == want:
                    pids.append(int(p.name))
            except OSError:
                continue
    return pids


def test_vm_container_serves_by_name_and_on_published_port(nv, net):
    network, made = net
    port = free_port()
    cid = detached(nv, made, network, "vmweb", "vm", "-p", f"127.0.0.1:{port}:80", IMAGE,
                   "sh", "-c", SERVE.format(text="from-vm"))
    info = json.loads(nv("inspect", cid, check=True).stdout)[0]
    ep = info["NetworkSettings"]["Networks"][network]
    # a process container on the same network reaches it by name, through the embedded DNS
    r = nv("run", "--rm", "--network", network, IMAGE, "sh", "-c",
           "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://vmweb/ && exit 0; sleep 1; done; exit 1")
    assert r.stdout == "from-vm\n", r.stderr
    # the host reaches the published port (kernel DNAT to the container's address, now the guest's)
    assert host_fetch(f"http://127.0.0.1:{port}/") == "from-vm\n"
    # the guest's NIC is the container's endpoint: same address, MAC and default route as inspect shows
    r = nv("exec", cid, "sh", "-c", "ip -4 -o addr show eth0; cat /sys/class/net/eth0/address; ip route",
           check=True)
    assert f"inet {ep['IPAddress']}/{ep['IPPrefixLen']}" in r.stdout
    assert ep["MacAddress"] in r.stdout
    assert f"default via {ep['Gateway']} dev eth0" in r.stdout
    # QEMU runs in the container's namespace; removing the container leaves nothing in it, nor the namespace
    sandbox = info["NetworkSettings"]["SandboxKey"]
    assert in_netns(sandbox)
    nv("rm", "-f", cid, check=True, timeout=120)
    made.remove("vmweb")
    assert not os.path.exists(sandbox)


def test_vm_container_resolves_and_fetches_by_name(nv, net):
    network, made = net
    pid = detached(nv, made, network, "procweb", "process", IMAGE, "sh", "-c", SERVE.format(text="from-process"))
    ip = json.loads(nv("inspect", pid, check=True).stdout)[0]["NetworkSettings"]["Networks"][network]["IPAddress"]
    r = nv("run", "--rm", "--network", network, "--isolation=vm", IMAGE, "sh", "-c",
           "cat /etc/resolv.conf; nslookup procweb; wget -qO- http://procweb/", timeout=180)
    assert r.returncode == 0, r.stderr
    assert "nameserver 127.0.0.11" in r.stdout  # the very file a process container gets
    assert f"Address: {ip}" in r.stdout
    assert r.stdout.endswith("from-process\n")


def test_network_none_is_loopback_only_and_sharing_a_stack_is_refused(nv, net):
    _, made = net
    r = nv("run", "--rm", "--network", "none", "--isolation=vm", IMAGE, "sh", "-c",
           "ls /sys/class/net; ip -4 -o addr show lo", timeout=180)
    assert r.stdout.split()[:5] == ["lo", "1:", "lo", "inet", "127.0.0.1/8"], r.stderr
    # a microVM has its own kernel: it cannot share the host's stack, nor another container's
    r = nv("run", "--rm", "--network", "host", "--isolation=vm", IMAGE, "true", timeout=180)
    assert r.returncode != 0
    assert "cannot use the host's network stack" in r.stderr
    detached(nv, made, "none", "holder", "process", IMAGE, "sleep", "600")
    r = nv("run", "--rm", "--network", "container:holder", "--isolation=vm", IMAGE, "true", timeout=180)
    assert r.returncode != 0
    assert "cannot join another container's network namespace" in r.stderr
