"""What dockerd honours in a container's endpoints and a network's options, through the docker CLI and
docker-py: several networks at create (API >= 1.44), aliases, fixed addresses, MAC addresses (per endpoint and
the deprecated Config.MacAddress), driver options (MTU, bridge name, ICC), internal networks, and overlapping
pools refused with dockerd's words. Traffic stays on the test's own bridges."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from apihelpers import api_request

A_SUBNET, B_SUBNET = "10.124.1.0/24", "10.124.2.0/24"


def _uid() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def nets(docker):
    """Two user networks with subnets of their own."""
    names = ("epa-" + _uid(), "epb-" + _uid())
    for net, subnet in zip(names, (A_SUBNET, B_SUBNET), strict=True):
        r = docker("network", "create", "--subnet", subnet, net)
        assert r.returncode == 0, r.stderr
    yield names
    for net in names:
        docker("network", "rm", net)


@pytest.fixture
def cleanup(docker):
    """Container and network names the test registers are removed afterwards."""
    made = {"containers": [], "networks": []}
    yield made
    if made["containers"]:
        docker("rm", "-f", *made["containers"])
    for net in made["networks"]:
        docker("network", "rm", net)


def _networks(docker, name: str) -> dict:
    r = docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _link(docker, name: str, ifname: str = "eth0") -> str:
    r = docker("exec", name, "ip", "-o", "link", "show", ifname)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _ping(docker, image, net: str, target: str) -> subprocess.CompletedProcess:
    return docker("run", "--rm", "--network", net, image, "ping", "-c", "1", "-W", "2", target)


def test_two_networks_at_create_with_alias_ip_and_mac(docker, image, nets, cleanup, name):
    a, b = nets
    cleanup["containers"].append(name)
    r = docker("run", "-d", "--name", name, "--network", f"name={a},alias=front,ip=10.124.1.77,"
               "mac-address=02:00:00:00:01:77", "--network", b, image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    eps = _networks(docker, name)
    assert set(eps) == {a, b}
    assert eps[a]["IPAddress"] == "10.124.1.77" and eps[a]["MacAddress"] == "02:00:00:00:01:77"
    assert "front" in eps[a]["Aliases"]
    assert eps[b]["IPAddress"].startswith("10.124.2.")
    assert "02:00:00:00:01:77" in _link(docker, name, "eth0")
    assert eps[b]["MacAddress"] in _link(docker, name, "eth1")
    # reachable on both networks: by its alias on a, by its name on b
    assert _ping(docker, image, a, "front").returncode == 0
    r = _ping(docker, image, b, name)
    assert r.returncode == 0 and eps[b]["IPAddress"] in r.stdout, r.stdout + r.stderr


def test_mac_address_on_the_default_bridge_created_then_started(docker, image, cleanup, name):
    cleanup["containers"].append(name)
    r = docker("create", "--name", name, "--mac-address", "02:00:00:00:02:01", image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    assert _networks(docker, name)["bridge"]["MacAddress"] == "02:00:00:00:02:01"
    assert docker("start", name).returncode == 0
    assert _networks(docker, name)["bridge"]["MacAddress"] == "02:00:00:00:02:01"
    assert "02:00:00:00:02:01" in _link(docker, name)


def test_docker_py_networking_config_and_the_deprecated_container_mac(client, api_socket, image, nets, cleanup,
                                                                       name):
    a, b = nets
    cleanup["containers"] += [name, name + "-old"]
    nc = client.api.create_networking_config({
        a: client.api.create_endpoint_config(aliases=["py-alias"], ipv4_address="10.124.1.88"),
        b: client.api.create_endpoint_config(mac_address="02:00:00:00:03:02")})
    cid = client.api.create_container(image, ["sleep", "600"], name=name, networking_config=nc,
                                      host_config=client.api.create_host_config(network_mode=a))["Id"]
    client.api.start(cid)
    eps = client.containers.get(cid).attrs["NetworkSettings"]["Networks"]
    assert eps[a]["IPAddress"] == "10.124.1.88" and "py-alias" in eps[a]["Aliases"]
    assert eps[b]["MacAddress"] == "02:00:00:00:03:02"
    # API 1.43: the container-wide Config.MacAddress is the NetworkMode network's MAC (dockerd moves it there)
    status, _, body = api_request(api_socket, "POST",
                                  f"/v1.43/containers/create?name={name}-old",
                                  {"Image": image, "Cmd": ["sleep", "600"], "MacAddress": "02:00:00:00:03:09",
                                   "HostConfig": {"NetworkMode": b}})
    assert status == 201, body
    client.api.start(body["Id"])
    assert client.containers.get(body["Id"]).attrs["NetworkSettings"]["Networks"][b]["MacAddress"] \
        == "02:00:00:00:03:09"


def test_invalid_or_conflicting_mac_is_refused_at_create(api_socket, image, nets):
    a, _ = nets
    status, _, body = api_request(api_socket, "POST", "/v1.47/containers/create", {
        "Image": image, "Cmd": ["true"], "HostConfig": {"NetworkMode": a},
        "NetworkingConfig": {"EndpointsConfig": {a: {"MacAddress": "02:00:00:00:04"}}}})
    assert (status, body["message"]) == (400, "invalid MAC address: 02:00:00:00:04")
    status, _, body = api_request(api_socket, "POST", "/v1.47/containers/create", {
        "Image": image, "Cmd": ["true"], "MacAddress": "02:00:00:00:04:01", "HostConfig": {"NetworkMode": a},
        "NetworkingConfig": {"EndpointsConfig": {a: {"MacAddress": "02:00:00:00:04:02"}}}})
    assert status == 400 and body["message"] == ("the container-wide MAC address must match the endpoint-specific "
                                                 "MAC address for the main network, or be left empty")
    status, _, body = api_request(api_socket, "POST", "/v1.43/containers/create", {
        "Image": image, "Cmd": ["true"], "MacAddress": "02:00:00:00:04:01", "HostConfig": {"NetworkMode": "container:x"}})
    assert (status, body["message"]) == (400, "conflicting options: mac-address and the network mode")


def test_driver_options_mtu_and_bridge_name(docker, image, cleanup, name):
    net, bridge = "mtu-" + _uid(), "nvt" + _uid()
    cleanup["networks"].append(net)
    cleanup["containers"].append(name)
    r = docker("network", "create", "-o", "com.docker.network.driver.mtu=1400",
               "-o", f"com.docker.network.bridge.name={bridge}", net)
    assert r.returncode == 0, r.stderr
    opts = json.loads(docker("network", "inspect", "--format", "{{json .Options}}", net).stdout)
    assert opts == {"com.docker.network.driver.mtu": "1400", "com.docker.network.bridge.name": bridge}
    host = subprocess.run(["ip", "-o", "link", "show", bridge], capture_output=True, text=True)
    assert host.returncode == 0 and "mtu 1400" in host.stdout, host.stderr
    assert docker("run", "-d", "--name", name, "--network", net, image, "sleep", "600").returncode == 0
    assert "mtu 1400" in _link(docker, name)


def test_icc_disabled_blocks_container_to_container_but_not_dns(docker, image, cleanup, name):
    net = "noicc-" + _uid()
    cleanup["networks"].append(net)
    cleanup["containers"].append(name)
    r = docker("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", net)
    assert r.returncode == 0, r.stderr
    assert docker("run", "-d", "--name", name, "--network", net, image, "sleep", "600").returncode == 0
    r = docker("run", "--rm", "--network", net, image, "nslookup", name)
    assert r.returncode == 0 and "Address" in r.stdout.split("Name:")[-1], r.stdout + r.stderr
    assert _ping(docker, image, net, name).returncode != 0


def test_internal_network_has_no_default_route_but_its_members_talk(docker, image, cleanup, name):
    net = "int-" + _uid()
    cleanup["networks"].append(net)
    cleanup["containers"].append(name)
    assert docker("network", "create", "--internal", net).returncode == 0
    assert docker("network", "inspect", "--format", "{{.Internal}}", net).stdout.strip() == "true"
    assert docker("run", "-d", "--name", name, "--network", net, image, "sleep", "600").returncode == 0
    routes = docker("exec", name, "ip", "route").stdout
    assert routes and "default" not in routes
    assert _ping(docker, image, net, name).returncode == 0


def test_overlapping_pool_is_refused_with_dockerds_words(docker, client, nets, cleanup):
    import docker as dockerpy

    net = "ovl-" + _uid()
    cleanup["networks"].append(net)
    r = docker("network", "create", "--subnet", "10.124.1.128/25", net)
    assert r.returncode == 1
    assert r.stderr.strip() == ("Error response from daemon: invalid pool request: Pool overlaps with other one "
                                "on this address space")
    with pytest.raises(dockerpy.errors.APIError) as e:
        client.networks.create(net, ipam=dockerpy.types.IPAMConfig(
            pool_configs=[dockerpy.types.IPAMPool(subnet="10.124.0.0/16")]))
    assert e.value.status_code == 403
    assert net not in docker("network", "ls", "--format", "{{.Name}}").stdout.split()


def test_docker_py_run_with_mac_address(client, image, name):
    c = client.containers.run(image, ["sleep", "600"], name=name, detach=True, mac_address="02:00:00:00:05:01")
    try:
        c.reload()
        assert c.attrs["NetworkSettings"]["Networks"]["bridge"]["MacAddress"] == "02:00:00:00:05:01"
        assert "02:00:00:00:05:01" in c.exec_run(["ip", "link", "show", "eth0"]).output.decode()
    finally:
        c.remove(force=True)


def test_gw_priority_picks_the_default_route(docker, image, nets, cleanup, name):
    a, b = nets
    cleanup["containers"].append(name)
    r = docker("run", "-d", "--name", name, "--network", a, "--network", f"name={b},gw-priority=1", image,
               "sleep", "600")
    assert r.returncode == 0, r.stderr
    assert "default via 10.124.2.1" in docker("exec", name, "ip", "route").stdout
    eps = _networks(docker, name)
    assert (eps[a]["GwPriority"], eps[b]["GwPriority"]) == (0, 1)
