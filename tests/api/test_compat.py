"""What clients pinned to older API versions and swarm-probing clients see, as dockerd answers them; networks
as docker-compose 1.x drives them (disconnect and reconnect a created container, compare Options)."""

from __future__ import annotations

import uuid

import pytest
from apihelpers import api_request


@pytest.fixture
def user_network(docker):
    net = f"compat-{uuid.uuid4().hex[:8]}"
    r = docker("network", "create", net)
    assert r.returncode == 0, r.stderr
    yield net
    docker("network", "rm", net)


@pytest.mark.parametrize("version", ["1.24", "1.30", "1.38", "1.41", "1.44"])
def test_old_api_versions_served(api_socket, version):
    for path in ("/version", "/info", "/containers/json?all=1", "/images/json", "/networks", "/volumes"):
        status, _, body = api_request(api_socket, "GET", f"/v{version}{path}")
        assert status == 200, (path, body)


def test_container_inspect_aliases_by_version(api_socket, docker, user_network, name, image):
    r = docker("run", "-d", "--name", name, "--network", user_network, "--network-alias", "web", image,
               "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        _, _, old = api_request(api_socket, "GET", f"/v1.41/containers/{name}/json")
        short_id = old["Id"][:12]
        assert old["Config"]["Hostname"] == short_id
        assert old["NetworkSettings"]["Networks"][user_network]["Aliases"] == ["web", short_id]
        _, _, new = api_request(api_socket, "GET", f"/v1.50/containers/{name}/json")
        ep = new["NetworkSettings"]["Networks"][user_network]
        assert ep["Aliases"] == ["web"]
        assert short_id in ep["DNSNames"] and name in ep["DNSNames"]
    finally:
        docker("rm", "-f", name)


def test_image_inspect_container_config_before_1_45(api_socket, image):
    _, _, old = api_request(api_socket, "GET", f"/v1.41/images/{image}/json")
    assert "ContainerConfig" in old and "Container" in old
    assert old["VirtualSize"] == old["Size"]
    _, _, new = api_request(api_socket, "GET", f"/v1.50/images/{image}/json")
    assert "ContainerConfig" not in new and "VirtualSize" not in new


def test_swarm_endpoints_answer_not_a_manager(api_socket, docker):
    status, _, body = api_request(api_socket, "GET", "/v1.50/swarm")
    assert status == 503
    assert body["message"].startswith("This node is not a swarm manager.")
    for path in ("/nodes", "/services", "/tasks", "/secrets", "/configs"):
        assert api_request(api_socket, "GET", path)[0] == 503, path
    assert api_request(api_socket, "POST", "/swarm/leave")[2]["message"] == "This node is not part of a swarm"
    r = docker("node", "ls")
    assert r.returncode != 0 and "This node is not a swarm manager" in r.stderr
    r = docker("info", "--format", "{{.Swarm.LocalNodeState}}")
    assert r.stdout.strip() == "inactive"


def test_network_options_only_what_the_user_gave(client, user_network):
    net = client.networks.get(user_network)
    assert net.attrs["Options"] == {}
    named = client.networks.create(f"compat-o-{uuid.uuid4().hex[:6]}", driver="bridge",
                                   options={"com.docker.network.driver.mtu": "1400"})
    try:
        assert named.attrs["Options"] == {"com.docker.network.driver.mtu": "1400"}
    finally:
        named.remove()


def test_disconnect_then_connect_created_container_keeps_network(client, user_network, name, image):
    """docker-compose 1.x: create on the network, disconnect, connect with aliases, start."""
    c = client.containers.create(image, ["sleep", "600"], name=name, network=user_network)
    try:
        net = client.networks.get(user_network)
        assert list(c.attrs["NetworkSettings"]["Networks"]) == [user_network]
        net.disconnect(c)
        c.reload()
        assert user_network not in c.attrs["NetworkSettings"]["Networks"]
        net.connect(c, aliases=["cache"])
        c.start()
        c.reload()
        ep = c.attrs["NetworkSettings"]["Networks"][user_network]
        assert ep["IPAddress"], c.attrs["NetworkSettings"]["Networks"]
        assert c.attrs["HostConfig"]["NetworkMode"] == user_network
        assert "cache" in ep["Aliases"]
        assert "none" not in c.attrs["NetworkSettings"]["Networks"]
    finally:
        c.remove(force=True)


def test_disconnected_from_every_network_starts_with_loopback_only(client, user_network, name, image):
    c = client.containers.create(image, ["sleep", "600"], name=name, network=user_network)
    try:
        client.networks.get(user_network).disconnect(c)
        c.start()
        out = c.exec_run(["ip", "-o", "addr"]).output.decode()
        assert "eth0" not in out and "lo" in out
    finally:
        c.remove(force=True)


def test_plugins_and_search_answer_clearly(api_socket, docker):
    assert api_request(api_socket, "GET", "/plugins")[::2] == (200, [])
    r = docker("plugin", "ls", "--format", "{{.Name}}")
    assert r.returncode == 0 and r.stdout.strip() == ""
    status, _, body = api_request(api_socket, "GET", "/images/search?term=busybox")
    assert status == 501 and "search" in body["message"]
