"""User-defined bridge networks through the docker CLI and docker-py: create, DNS by name and alias,
connect/disconnect, inspect, rm while in use, prune, and ports published on loopback.

Only loopback and container addresses on the bridges this engine made are contacted; the serve process runs
with NANOVISOR_NET_OUTBOUND=0 and NANOVISOR_DNS_FORWARD=0 (see apihelpers.ServeProcess)."""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
from apihelpers import api_request, free_port, response_validator

SUBNET = "10.123.77.0/24"      # test-only ranges, in the test run's own network namespace
PY_SUBNET = "10.123.78.0/24"
SIDE_SUBNET = "10.123.79.0/24"
PAGE = "hello-from-web"


def _httpd(page: str) -> list[str]:
    """busybox httpd in the foreground, serving one index page."""
    return ["sh", "-c", f"mkdir -p /www && echo {page} > /www/index.html && exec httpd -f -p 80 -h /www"]


def _fetch_in(url: str) -> list[str]:
    """A wget that waits (bounded) for the server to come up, as a user's retry loop would."""
    return ["sh", "-c", f"for i in $(seq 100); do wget -qO- {url} && exit 0; sleep 0.1; done; exit 1"]


@pytest.fixture(scope="module")
def app(docker):
    name = "app-" + uuid.uuid4().hex[:6]
    r = docker("network", "create", "--subnet", SUBNET, name)
    assert r.returncode == 0, r.stderr
    yield name
    docker("network", "rm", name)


@pytest.fixture(scope="module")
def web(docker, image, app):
    """`web` serving PAGE on network app, also known there as `www`."""
    r = docker("run", "-d", "--network", app, "--network-alias", "www", "--name", "web", image, *_httpd(PAGE))
    assert r.returncode == 0, r.stderr
    yield "web"
    docker("rm", "-f", "web")


def test_create_shows_in_ls_and_inspect(docker, app):
    assert app in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    r = docker("network", "inspect", "--format", "{{.Driver}} {{range .IPAM.Config}}{{.Subnet}}{{end}}", app)
    assert r.stdout.split() == ["bridge", SUBNET]


def test_containers_reach_each_other_by_name_and_alias(docker, image, app, web):
    for host in ("web", "www"):
        r = docker("run", "--rm", "--network", app, image, *_fetch_in(f"http://{host}/"))
        assert r.returncode == 0, r.stderr
        assert r.stdout == PAGE + "\n"


def test_network_inspect_lists_the_container(docker, client, api_socket, app, web):
    r = docker("network", "inspect", app)
    assert r.returncode == 0, r.stderr
    (net,) = json.loads(r.stdout)
    members = {c["Name"]: c for c in net["Containers"].values()}
    assert "web" in members
    addr = ipaddress.ip_interface(members["web"]["IPv4Address"])
    assert addr.ip in ipaddress.ip_network(SUBNET)
    assert [c.name for c in client.networks.get(app).containers] == ["web"]
    status, _, body = api_request(api_socket, "GET", f"/networks/{app}")
    assert status == 200
    response_validator("/networks/{id}").validate(body)
    template = "{{(index .NetworkSettings.Networks \"" + app + "\").IPAddress}}"
    ip = docker("inspect", "--format", template, "web")
    assert ip.stdout.strip() == str(addr.ip)


def test_rm_in_use_network_is_refused(docker, app, web):
    r = docker("network", "rm", app)
    assert r.returncode == 1
    assert "error while removing network" in r.stderr
    assert f"network {app} id" in r.stderr and "has active endpoints" in r.stderr
    assert app in docker("network", "ls", "--format", "{{.Name}}").stdout.split()


@pytest.fixture
def side(docker):
    """A second user-defined network for a container that then joins app too."""
    net = "side-" + uuid.uuid4().hex[:6]
    r = docker("network", "create", "--subnet", SIDE_SUBNET, net)
    assert r.returncode == 0, r.stderr
    yield net
    docker("network", "rm", net)


def test_connect_and_disconnect_a_running_container(docker, image, app, web, side, name):
    r = docker("run", "-d", "--network", side, "--name", name, image, *_httpd("second"))
    assert r.returncode == 0, r.stderr
    try:
        r = docker("network", "connect", "--alias", "extra", "--ip", "10.123.77.50", app, name)
        assert r.returncode == 0, r.stderr
        networks = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout)
        assert networks[app]["IPAddress"] == "10.123.77.50"
        assert "extra" in networks[app]["Aliases"]
        # the newcomer reaches web by name, and is reachable by its alias
        r = docker("exec", name, *_fetch_in("http://web/"))
        assert (r.returncode, r.stdout) == (0, PAGE + "\n"), r.stderr
        r = docker("run", "--rm", "--network", app, image, *_fetch_in("http://extra/"))
        assert (r.returncode, r.stdout) == (0, "second\n"), r.stderr
        net = json.loads(docker("network", "inspect", app).stdout)[0]
        assert name in {c["Name"] for c in net["Containers"].values()}

        r = docker("network", "disconnect", app, name)
        assert r.returncode == 0, r.stderr
        networks = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout)
        assert app not in networks
        net = json.loads(docker("network", "inspect", app).stdout)[0]
        assert name not in {c["Name"] for c in net["Containers"].values()}
        addrs = docker("exec", name, "ip", "-o", "-4", "addr").stdout
        assert "10.123.77." not in addrs
    finally:
        docker("rm", "-f", name)


def test_default_bridge_container_resolves_names_after_connect(docker, image, app, web, name):
    r = docker("run", "-d", "--name", name, image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        assert docker("network", "connect", app, name).returncode == 0
        r = docker("exec", name, "wget", "-qO-", "http://web/")
        assert (r.returncode, r.stdout) == (0, PAGE + "\n"), r.stderr
    finally:
        docker("rm", "-f", name)


def test_docker_py_connect_disconnect_and_prune(client, image, name):
    net = client.networks.create(
        "py-" + uuid.uuid4().hex[:6], driver="bridge",
        ipam={"Driver": "default", "Config": [{"Subnet": PY_SUBNET}]})
    c = client.containers.run(image, ["sleep", "600"], name=name, detach=True)
    try:
        net.connect(c, aliases=["py-alias"])
        net.reload()
        assert [x.name for x in net.containers] == [name]
        c.reload()
        assert "py-alias" in c.attrs["NetworkSettings"]["Networks"][net.name]["Aliases"]
        net.disconnect(c, force=True)
        net.reload()
        assert net.containers == []
    finally:
        c.remove(force=True)
    pruned = client.networks.prune()
    assert net.id in pruned["NetworksDeleted"] or net.name in pruned["NetworksDeleted"]
    assert net.name not in [n.name for n in client.networks.list()]


def _get_loopback(url: str, attempts: int = 100) -> str:
    """GET through no proxy, retrying (bounded) while the server inside starts."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(attempts):
        try:
            with opener.open(url, timeout=5) as resp:
                return resp.read().decode()
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_published_port_on_loopback(docker, image, name):
    port = free_port()
    r = docker("run", "-d", "-p", f"127.0.0.1:{port}:80", "--name", name, image, *_httpd("published"))
    assert r.returncode == 0, r.stderr
    try:
        assert _get_loopback(f"http://127.0.0.1:{port}/") == "published\n"
        assert docker("port", name).stdout.strip() == f"80/tcp -> 127.0.0.1:{port}"
        assert docker("port", name, "80").stdout.strip() == f"127.0.0.1:{port}"
    finally:
        docker("rm", "-f", name)


def test_create_and_remove_over_raw_api(api_socket):
    """The bodies as the spec documents them."""
    name = "raw-" + uuid.uuid4().hex[:6]
    status, _, body = api_request(api_socket, "POST", "/networks/create",
                                  {"Name": name, "IPAM": {"Config": [{"Subnet": "10.123.80.0/24"}]}})
    assert status == 201, body
    response_validator("/networks/create", "post", 201).validate(body)
    status, _, again = api_request(api_socket, "POST", "/networks/create", {"Name": name})
    assert status == 409 and again["message"] == f"network with name {name} already exists"
    status, _, _ = api_request(api_socket, "DELETE", f"/networks/{body['Id']}")
    assert status == 204
    status, _, body = api_request(api_socket, "POST", "/networks/prune")
    assert status == 200
    response_validator("/networks/prune", "post", 200).validate(body)


def test_network_errors(docker, api_socket):
    r = docker("network", "inspect", "no-such-net")
    assert r.returncode == 1
    assert "network no-such-net not found" in r.stderr
    status, _, body = api_request(api_socket, "POST", "/networks/no-such-net/connect",
                                  {"Container": "nope", "EndpointConfig": {}})
    assert status == 404, body
