"""Progress messages, the CLI renderer, registry naming and credentials: the parts with no server."""

from __future__ import annotations

import io
import json

import pytest

from nanovisor.images.registry import credentials, hosts, progress
from nanovisor.images.registry.render import Renderer


def test_bar_matches_dockerd():
    assert progress.bar(32768, 2224423) == "[" + ">" + " " * 50 + "]  32.77kB/2.224MB"
    assert progress.bar(2224423, 2224423) == "[" + "=" * 50 + ">]  2.224MB/2.224MB"
    assert progress.counter("Downloading", "abc", 1, 2)["progressDetail"] == {"current": 1, "total": 2}


def test_stream_yields_messages_then_raises():
    def op(p, cancel):
        p(progress.status("one"))
        raise ValueError("boom")

    it = progress.stream(op)
    assert next(it) == {"status": "one"}
    with pytest.raises(ValueError, match="boom"):
        next(it)


def test_plain_renderer_prints_lines_without_bars():
    out = io.StringIO()
    r = Renderer(out, tty=False)
    r(progress.status("Pulling from library/busybox", "latest"))
    r(progress.layer("Pulling fs layer", "abc"))
    r(progress.counter("Downloading", "abc", 5, 10))
    r(progress.layer("Pull complete", "abc"))
    r(progress.status("Digest: sha256:00"))
    assert out.getvalue() == ("latest: Pulling from library/busybox\nabc: Pulling fs layer\n"
                              "abc: Pull complete\nDigest: sha256:00\n")


def test_tty_renderer_rewrites_layer_lines_in_place():
    out = io.StringIO()
    r = Renderer(out, tty=True)
    r(progress.layer("Pulling fs layer", "aaa"))
    r(progress.layer("Pulling fs layer", "bbb"))
    r(progress.counter("Downloading", "aaa", 5, 10))
    text = out.getvalue()
    assert text.startswith("aaa: Pulling fs layer\nbbb: Pulling fs layer\n")
    assert "\x1b[2A\r\x1b[2Kaaa: Downloading [" in text and text.endswith("\x1b[2B\r")


@pytest.mark.parametrize("name,insecure", [
    ("127.0.0.1:5000", True), ("localhost:5000", True), ("[::1]:5000", True), ("10.1.2.3:5000", False),
    ("registry.example.com", False), ("docker.io", False),
])
def test_default_insecure_registries_are_loopback(name, insecure):
    assert hosts.is_insecure(name) is insecure


def test_insecure_list_takes_cidrs_and_names():
    assert hosts.is_insecure("10.1.2.3:5000", ["10.0.0.0/8"])
    assert hosts.is_insecure("myreg:5000", ["myreg:5000"])
    assert not hosts.is_insecure("127.0.0.1:5000", [])
    assert hosts.endpoint_for("docker.io").host == "registry-1.docker.io"
    assert hosts.normalize_name("https://index.docker.io/v1/") == "docker.io"


def test_credentials_file_is_dockers(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"}}, "other": 1}))
    credentials.save("localhost:5000", credentials.AuthConfig("me", "secret"), path)
    data = json.loads(path.read_text())
    assert data["other"] == 1 and data["auths"]["localhost:5000"] == {"auth": "bWU6c2VjcmV0"}
    hub = credentials.lookup("docker.io", path)
    assert (hub.username, hub.password) == ("u", "p")
    assert credentials.AuthConfig.from_dict({"Username": "a", "Password": "b"}).password == "b"
    assert credentials.erase("localhost:5000", path) and not credentials.erase("localhost:5000", path)
