"""System endpoints, API versions, routing and error statuses, events, and responses checked against the
Engine API spec."""

from __future__ import annotations

import json
import time

import pytest
from apihelpers import api_request, response_validator


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_ping_headers(api_socket, method):
    status, headers, body = api_request(api_socket, method, "/_ping")
    assert status == 200
    assert headers["Api-Version"] == "1.50"
    assert headers["Ostype"] == "linux"
    assert headers["Docker-Experimental"] == "false"
    assert "no-cache" in headers["Cache-Control"]
    assert headers["Builder-Version"] == "1"
    assert body == (b"OK" if method == "GET" else b"")


def test_api_version_prefixes(api_socket):
    for prefix in ("", "/v1.24", "/v1.38", "/v1.40", "/v1.44", "/v1.50"):
        assert api_request(api_socket, "GET", prefix + "/version")[0] == 200, prefix
    status, _, body = api_request(api_socket, "GET", "/v1.23/version")
    assert status == 400
    assert body["message"] == ("client version 1.23 is too old. Minimum supported API version is 1.24, "
                               "please upgrade your client to a newer version")
    status, _, body = api_request(api_socket, "GET", "/v1.99/version")
    assert status == 400
    assert body["message"] == "client version 1.99 is too new. Maximum supported API version is 1.50"


def test_unknown_route(api_socket):
    assert api_request(api_socket, "GET", "/v1.44/no/such/route")[::2] == (404, {"message": "page not found"})


def test_bad_requests_are_400(api_socket):
    status, _, body = api_request(api_socket, "POST", "/containers/create", body="{not json",
                                  headers={"Content-Type": "application/json"})
    assert status == 400 and body["message"].startswith("invalid JSON")
    status, _, body = api_request(api_socket, "POST", "/containers/create", body="",
                                  headers={"Content-Type": "application/json"})
    assert status == 400 and body["message"] == "config cannot be empty in order to create a container"
    status, _, body = api_request(api_socket, "POST", "/containers/whatever/stop?t=soon")
    assert status == 400 and "t" in body["message"]
    status, _, body = api_request(api_socket, "GET", "/containers/json?filters=%7Bnope")
    assert status == 400 and body["message"].startswith("invalid filter")


def test_not_found_statuses(api_socket):
    assert api_request(api_socket, "GET", "/containers/ghost/json")[::2] == \
        (404, {"message": "No such container: ghost"})
    assert api_request(api_socket, "GET", "/images/ghost:1/json")[0] == 404
    status, _, body = api_request(api_socket, "POST", "/containers/create",
                                  body={"Image": "nano/ghost", "Cmd": ["true"]})
    assert status == 404 and body["message"].startswith("No such image: nano/ghost")


def test_missing_image_message_names_the_tag(api_socket):
    status, _, body = api_request(api_socket, "POST", "/containers/create",
                                  body={"Image": "nano/ghost", "Cmd": ["true"]})
    assert body["message"] == "No such image: nano/ghost:latest"


def test_start_twice_is_304(api_socket, running):
    assert api_request(api_socket, "POST", f"/containers/{running}/start")[0] == 304


def test_docker_version_and_info(docker):
    v = docker("version", "--format", "{{.Server.APIVersion}}")
    assert v.returncode == 0, v.stderr
    assert v.stdout.strip() == "1.50"
    runtimes = json.loads(docker("info", "--format", "{{json .Runtimes}}").stdout)
    assert {"runc", "crun", "nanovisor-vm"} <= set(runtimes)
    info = docker("info")
    assert info.returncode == 0, info.stderr
    assert "Runtimes:" in info.stdout


def test_system_df(docker):
    r = docker("system", "df")
    assert r.returncode == 0, r.stderr
    assert "Images" in r.stdout and "Containers" in r.stdout


def test_events_for_a_container(docker, client, image, name):
    since = time.time()
    assert docker("run", "--name", name, image, "true").returncode == 0
    docker("rm", name)
    until = time.time() + 1
    r = docker("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--filter",
               f"container={name}", "--format", "{{.Action}}")
    assert r.returncode == 0, r.stderr
    actions = r.stdout.split()
    for expected in ("create", "start", "die", "destroy"):
        assert expected in actions, actions
    py = list(client.events(since=int(since), until=int(until) + 1, decode=True,
                            filters={"container": name}))
    assert {"create", "start"} <= {e["Action"] for e in py}


@pytest.mark.parametrize("path,url", [
    ("/version", "/version"),
    ("/info", "/info"),
    ("/containers/json", "/containers/json?all=1"),
    ("/images/json", "/images/json"),
    ("/volumes", "/volumes"),
    ("/networks", "/networks"),
    ("/system/df", "/system/df"),
])
def test_responses_match_the_spec(api_socket, running, path, url):
    status, _, body = api_request(api_socket, "GET", url)
    assert status == 200
    errors = sorted(response_validator(path).iter_errors(body), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def _spec_errors(sock: str, path: str, url: str) -> list[str]:
    status, _, body = api_request(sock, "GET", url)
    assert status == 200, body
    errors = sorted(response_validator(path).iter_errors(body), key=str)
    return [f"{url} {list(e.absolute_path)}: {e.message}" for e in errors]


def test_resource_responses_match_the_spec(api_socket, client, running, image):
    exec_id = client.api.exec_create(running, ["true"])["Id"]
    client.api.exec_start(exec_id)
    vol = client.volumes.create()
    try:
        errors = []
        for path, url in (("/images/{name}/json", f"/images/{image}/json"),
                          ("/images/{name}/history", f"/images/{image}/history"),
                          ("/networks/{id}", "/networks/bridge"),
                          ("/containers/{id}/top", f"/containers/{running}/top"),
                          ("/containers/{id}/stats", f"/containers/{running}/stats?stream=0&one-shot=1"),
                          ("/exec/{id}/json", f"/exec/{exec_id}/json"),
                          ("/volumes/{name}", f"/volumes/{vol.name}")):
            errors += _spec_errors(api_socket, path, url)
        assert not errors, "\n".join(errors[:20])
    finally:
        vol.remove()


def test_container_inspect_matches_the_spec(api_socket, running):
    errors = _spec_errors(api_socket, "/containers/{id}/json", f"/containers/{running}/json")
    assert not errors, "\n".join(errors)
