"""The server's pure parts: version prefix, routing, filters, detach keys, stdcopy, bodies, error mapping."""

from __future__ import annotations

import io
from email.message import Message

import pytest

from nanovisor import API_VERSION, errors
from nanovisor.api import stdcopy
from nanovisor.api.body import BodyReader
from nanovisor.api.errors import RouteNotFound, error_status
from nanovisor.api.hijack import DetachMatcher, header
from nanovisor.api.request import parse_filters
from nanovisor.api.router import default_router, split_version
from nanovisor.api.server import parse_host
from nanovisor.engine.detachkeys import parse_detach_keys
from nanovisor.images.registry.errors import Unauthorized


def test_version_prefix():
    assert split_version("/v1.44/containers/json") == ("1.44", "/containers/json")
    assert split_version("/containers/json") == (API_VERSION, "/containers/json")
    with pytest.raises(errors.InvalidParameter, match="client version 1.23 is too old. Minimum supported "
                       "API version is 1.24, please upgrade your client to a newer version"):
        split_version("/v1.23/info")
    with pytest.raises(errors.InvalidParameter, match="client version 9.1 is too new"):
        split_version("/v9.1/info")


def test_routes_match_image_names_with_slashes_and_tags():
    router = default_router()
    handler, params = router.match("GET", "/images/nano/busybox:latest/json")
    assert params == {"name": "nano/busybox:latest"} and handler.__name__ == "inspect"
    assert router.match("GET", "/images/json")[0].__name__ == "list_"
    assert router.match("DELETE", "/containers/abc")[1] == {"name": "abc"}
    with pytest.raises(RouteNotFound):
        router.match("GET", "/containers/abc/nothing")
    with pytest.raises(RouteNotFound):
        router.match("PATCH", "/containers/json")


def test_filters_both_forms():
    assert parse_filters('{"label":["a=b"],"status":{"running":true,"exited":false}}') == \
        {"label": ["a=b"], "status": ["running"]}
    assert parse_filters(None) is None
    with pytest.raises(errors.InvalidParameter, match="invalid filter"):
        parse_filters("{nope")


def test_detach_keys():
    assert parse_detach_keys(None) == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    with pytest.raises(errors.InvalidParameter, match=r"Invalid escape keys \(ctrl-\) provided"):
        parse_detach_keys("ctrl-")
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"ab\x10c") == (b"ab\x10c", False)      # broken sequence passes through
    assert m.feed(b"x\x10") == (b"x", False)               # partial match held back
    assert m.feed(b"\x11rest") == (b"", True)
    assert DetachMatcher(None).feed(b"\x10\x11") == (b"\x10\x11", False)


def test_stdcopy_roundtrip():
    data = stdcopy.frame(1, b"out") + stdcopy.frame(2, b"err\n")
    assert data[:8] == b"\x01\x00\x00\x00\x00\x00\x00\x03"
    assert stdcopy.parse(data) == [(1, b"out"), (2, b"err\n")]


def test_hijack_header_follows_moby():
    assert header(True, False, "1.44").startswith(
        b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n"
        b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    assert b"raw-stream" in header(True, True, "1.44")
    assert b"raw-stream" in header(False, False, "1.41")
    assert header(False, True, "1.50").startswith(b"HTTP/1.1 200 OK\r\n")


def _headers(**kv) -> Message:
    m = Message()
    for k, v in kv.items():
        m[k.replace("_", "-")] = v
    return m


def test_chunked_body_reads_exactly_the_body():
    raw = io.BufferedReader(io.BytesIO(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT"))
    body = BodyReader(raw, _headers(Transfer_Encoding="chunked"))
    assert body.read_all() == b"hello world"
    assert raw.read() == b"NEXT"


def test_sized_body_and_drain():
    raw = io.BufferedReader(io.BytesIO(b"abcdefNEXT"))
    body = BodyReader(raw, _headers(Content_Length="6"))
    assert body.read(2) == b"ab"
    assert body.drain()
    assert raw.read() == b"NEXT"


def test_error_mapping():
    assert error_status(errors.no_such_container("x")) == (404, {"message": "No such container: x"})
    assert error_status(errors.Conflict("busy"))[0] == 409
    assert error_status(errors.InvalidParameter("bad"))[0] == 400
    assert error_status(errors.NotModified("")) == (304, None)
    assert error_status(RouteNotFound("/x")) == (404, {"message": "page not found"})
    assert error_status(NotImplementedError("network create"))[0] == 501
    denied = "login attempt to http://127.0.0.1:5000/v2/ failed with status: 401 Unauthorized"
    assert error_status(Unauthorized(denied)) == (401, {"message": denied})
    assert error_status(RuntimeError("boom")) == (500, {"message": "boom"})


def test_parse_host():
    assert parse_host("unix:///run/x.sock") == ("unix", "/run/x.sock")
    assert parse_host("tcp://127.0.0.1:2375") == ("tcp", ("127.0.0.1", 2375))
    assert parse_host("tcp://[::1]:2376") == ("tcp", ("::1", 2376))
    with pytest.raises(errors.InvalidParameter):
        parse_host("ssh://host")
