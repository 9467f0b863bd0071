"""The nano operations through `nanovisor serve` (POST /nano/build, POST /nano/slim): same results and the
same refusals as the CLI, as JSON."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from apihelpers import api_request


def test_build_through_the_api(nano_socket, docker):
    query = urlencode([("package", "zlib1g"), ("t", "nano/api-zlib")])
    status, _, body = api_request(nano_socket, "POST", f"/nano/build?{query}")
    assert status == 200, body
    assert any(p.startswith("zlib1g=") for p in body["Packages"])
    [img] = json.loads(docker("image", "inspect", "nano/api-zlib").stdout)
    assert img["Id"] == body["Id"]
    assert "zlib1g" in img["Config"]["Labels"]["org.nanovisor.nano.sbom"]


def test_api_refusals(nano_socket, python_id):
    status, _, body = api_request(nano_socket, "POST", "/nano/build")
    assert status == 400 and "package" in body["message"]
    query = urlencode([("image", "nano/python"), ("t", "refused/api"), ("probe", "python3 -c 1")])
    status, _, body = api_request(nano_socket, "POST", f"/nano/slim?{query}")
    assert status == 400 and "before the probes ran" in body["message"]
    status, _, body = api_request(nano_socket, "POST", "/nano/slim?image=no/such-image&t=x/y")
    assert status == 404
