"""Legacy links (`--link NAME:ALIAS`) as dockerd keeps them, through the docker CLI and docker-py: on the default
bridge the parent gets the child's variables and an /etc/hosts line, the child answers to the link's name, and
`docker rm --link` removes a link with dockerd's errors; on a user network a link is an alias only its parent
resolves."""

from __future__ import annotations

import json
import uuid

import pytest


@pytest.fixture
def child(docker, image):
    """A running child on the default bridge with an environment and exposed ports (a tcp one, a udp range)."""
    name = "kid-" + uuid.uuid4().hex[:6]
    r = docker("run", "-d", "--name", name, "-e", "FOO=bar", "--expose", "6379", "--expose", "7000-7002/udp",
               image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    yield name
    docker("rm", "-f", name)


def _ip(docker, name: str, net: str = "bridge") -> str:
    r = docker("inspect", "--format", "{{(index .NetworkSettings.Networks \"" + net + "\").IPAddress}}", name)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_link_env_hosts_and_names_on_the_default_bridge(docker, image, child, running, name):
    parent = name + "-p"
    r = docker("run", "-d", "--name", parent, "--link", f"{child}:db", image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        ip = _ip(docker, child)
        env = sorted(v for v in docker("exec", parent, "env").stdout.split() if v.startswith("DB_"))
        t, u = f"tcp://{ip}", f"udp://{ip}"
        assert env == sorted([
            f"DB_PORT={t}:6379", f"DB_PORT_6379_TCP={t}:6379", f"DB_PORT_6379_TCP_ADDR={ip}",
            "DB_PORT_6379_TCP_PORT=6379", "DB_PORT_6379_TCP_PROTO=tcp",
            *[v for p in (7000, 7001, 7002) for v in (f"DB_PORT_{p}_UDP={u}:{p}", f"DB_PORT_{p}_UDP_ADDR={ip}",
                                                      f"DB_PORT_{p}_UDP_PORT={p}", f"DB_PORT_{p}_UDP_PROTO=udp")],
            f"DB_PORT_7000_UDP_START={u}:7000", "DB_PORT_7000_UDP_PORT_START=7000",
            f"DB_PORT_7000_UDP_END={u}:7002", "DB_PORT_7000_UDP_PORT_END=7002",
            f"DB_NAME=/{parent}/db", "DB_ENV_FOO=bar"])
        hostname = docker("inspect", "--format", "{{.Config.Hostname}}", child).stdout.strip()
        hosts = docker("exec", parent, "cat", "/etc/hosts").stdout.splitlines()
        assert f"{ip}\tdb {hostname} {child}" in hosts
        assert docker("exec", parent, "ping", "-c", "1", "-W", "2", "db").returncode == 0
        links = json.loads(docker("inspect", "--format", "{{json .HostConfig.Links}}", parent).stdout)
        assert links == [f"/{child}:/{parent}/db"]
        names = docker("ps", "--no-trunc", "--filter", f"name=^{child}$", "--format", "{{.Names}}").stdout.strip()
        assert names == f"{child},{parent}/db"
        # a container that is not linked has none of it
        assert "DB_NAME" not in docker("exec", running, "env").stdout
    finally:
        docker("rm", "-f", parent)


def test_rm_link_removes_the_link_with_dockerds_errors(docker, image, child, name):
    r = docker("run", "-d", "--name", name, "--link", f"{child}:db", image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        r = docker("rm", "--link", f"/{name}/nope")
        assert r.returncode == 1 and r.stderr.strip() == f"Error response from daemon: No such container: {name}/nope"
        r = docker("rm", "--link", f"/{child}")
        assert r.returncode == 1
        assert r.stderr.strip() == ("Error response from daemon: Conflict, cannot remove the default link name of "
                                    "the container")
        r = docker("rm", "--link", f"/{name}/db")
        assert r.returncode == 0, r.stderr
        assert docker("inspect", "--format", "{{json .HostConfig.Links}}", name).stdout.strip() == "null"
        assert not any("\tdb " in line for line in docker("exec", name, "cat", "/etc/hosts").stdout.splitlines())
        assert docker("inspect", "--format", "{{.State.Running}}", child).stdout.strip() == "true"
    finally:
        docker("rm", "-f", name)


def test_docker_py_links_and_a_missing_child(client, image, child, name):
    import docker as dockerpy

    c = client.containers.run(image, ["sleep", "600"], name=name, detach=True, links={child: "cache"})
    try:
        env = c.exec_run(["sh", "-c", "echo $CACHE_NAME $CACHE_PORT"]).output.decode().strip()
        assert env == f"/{name}/cache tcp://{c.client.containers.get(child).attrs['NetworkSettings']['IPAddress']}:6379"
    finally:
        c.remove(force=True)
    with pytest.raises(dockerpy.errors.APIError) as e:
        client.containers.create(image, ["true"], links={"no-such-kid": "x"})
    assert e.value.status_code == 400
    assert e.value.explanation == "could not get container for no-such-kid: No such container: no-such-kid"


def test_link_on_a_user_network_is_an_alias_for_the_parent_only(docker, image, name):
    net = "lnk-" + uuid.uuid4().hex[:6]
    assert docker("network", "create", net).returncode == 0
    try:
        assert docker("run", "-d", "--name", name, "--network", net, image, "sleep", "600").returncode == 0
        ip = _ip(docker, name, net)
        r = docker("run", "--rm", "--network", net, "--link", f"{name}:cache", image, "ping", "-c", "1", "-W", "2",
                   "cache")
        assert r.returncode == 0 and ip in r.stdout, r.stdout + r.stderr
        r = docker("run", "--rm", "--network", net, image, "ping", "-c", "1", "-W", "2", "cache")
        assert r.returncode != 0 and "bad address" in r.stderr
    finally:
        docker("rm", "-f", name)
        docker("network", "rm", net)


def test_parent_hosts_follow_a_restarted_child_to_its_new_address(docker, image, child, name):
    r = docker("run", "-d", "--name", name, "--link", f"{child}:db", image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    squatter = name + "-sq"
    try:
        old = _ip(docker, child)
        assert docker("stop", "-t", "0", child).returncode == 0
        # another container takes the child's address; the child comes back on a new one
        assert docker("run", "-d", "--name", squatter, image, "sleep", "600").returncode == 0
        assert docker("start", child).returncode == 0
        new = _ip(docker, child)
        assert new != old
        hosts = docker("exec", name, "cat", "/etc/hosts").stdout.splitlines()
        assert any(line.startswith(f"{new}\tdb ") for line in hosts), hosts
        assert docker("exec", name, "ping", "-c", "1", "-W", "2", "db").returncode == 0
    finally:
        docker("rm", "-f", name, squatter)


def test_network_connect_with_link_on_a_user_network(docker, image, name):
    net = "lnc-" + uuid.uuid4().hex[:6]
    parent = name + "-p"
    assert docker("network", "create", net).returncode == 0
    try:
        assert docker("run", "-d", "--name", name, "--network", net, image, "sleep", "600").returncode == 0
        assert docker("run", "-d", "--name", parent, image, "sleep", "600").returncode == 0
        r = docker("network", "connect", "--link", f"{name}:store", net, parent)
        assert r.returncode == 0, r.stderr
        links = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", parent).stdout)
        assert links[net]["Links"] == [f"{name}:store"]
        r = docker("exec", parent, "ping", "-c", "1", "-W", "2", "store")
        assert r.returncode == 0 and _ip(docker, name, net) in r.stdout, r.stdout + r.stderr
    finally:
        docker("rm", "-f", name, parent)
        docker("network", "rm", net)
