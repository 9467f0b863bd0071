"""Hostile input at the API edge: every malformed value a 400 with a clear {"message": ...}, malformed HTTP
framing a 400 with the connection closed (never a traceback), and one bad image config breaks nothing else."""

from __future__ import annotations

import json
import os
import socket
import uuid

import pytest
from apihelpers import api_request

BIG = 1 << 64
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module", autouse=True)
def log_mark(api_socket) -> tuple[str, int]:
    """The serve log and its size before this module's first request."""
    path = os.path.join(os.path.dirname(api_socket), "serve.log")
    return path, os.path.getsize(path)


def _create(image: str, **fields) -> dict:
    body = {"Image": image, "Cmd": ["true"]}
    host = fields.pop("HostConfig", None)
    body.update(fields)
    if host is not None:
        body["HostConfig"] = host
    return body


CREATE_BODIES = {
    "Tty as string": {"Tty": "yes"},
    "Cmd as number": {"Cmd": 5},
    "Env as string": {"Env": "A=1"},
    "Env item as object": {"Env": [{"A": 1}]},
    "Labels value as number": {"Labels": {"a": 1}},
    "ExposedPorts as list": {"ExposedPorts": ["80/tcp"]},
    "StopTimeout as float": {"StopTimeout": 1.5},
    "StopTimeout past 2^63": {"StopTimeout": BIG},
    "Memory past 2^63": {"HostConfig": {"Memory": BIG}},
    "Memory below -2^63": {"HostConfig": {"Memory": -BIG}},
    "Memory as string": {"HostConfig": {"Memory": "1g"}},
    "NanoCpus past 2^63": {"HostConfig": {"NanoCpus": 10 ** 30}},
    "PidsLimit as bool": {"HostConfig": {"PidsLimit": True}},
    "CpuShares as float": {"HostConfig": {"CpuShares": 2.5}},
    "HostConfig as list": {"HostConfig": []},
    "Binds as string": {"HostConfig": {"Binds": "/tmp:/tmp"}},
    "PortBindings HostPort as number": {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 8080}]}}},
    "RestartPolicy as string": {"HostConfig": {"RestartPolicy": "always"}},
    "RestartPolicy count past 2^63": {"HostConfig": {"RestartPolicy": {"Name": "on-failure",
                                                                        "MaximumRetryCount": BIG}}},
    "Ulimits as dict": {"HostConfig": {"Ulimits": {"nofile": 5}}},
    "Ulimit soft past 2^63": {"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": BIG, "Hard": BIG}]}},
    "LogConfig Config value number": {"HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"a": 1}}}},
    "Mounts item as string": {"HostConfig": {"Mounts": ["/tmp:/tmp"]}},
    "SecurityOpt as string": {"HostConfig": {"SecurityOpt": "no-new-privileges"}},
    "CapAdd item as number": {"HostConfig": {"CapAdd": [1]}},
    "Dns as string": {"HostConfig": {"Dns": "1.1.1.1"}},
    "NetworkingConfig as list": {"NetworkingConfig": []},
    "EndpointsConfig value as string": {"NetworkingConfig": {"EndpointsConfig": {"bridge": "x"}}},
    "Healthcheck Interval string": {"Healthcheck": {"Test": ["CMD", "true"], "Interval": "1s"}},
    "Hostname 300 characters": {"Hostname": "h" * 300},
    "Domainname 300 characters": {"Domainname": "d" * 300},
    "Hostname with slash": {"Hostname": "a/b"},
    "seccomp profile path": {"HostConfig": {"SecurityOpt": ["seccomp=/etc/passwd"]}},
}


@pytest.mark.parametrize("case", list(CREATE_BODIES))
def test_create_body_with_wrong_types_is_400(api_socket, image, case):
    status, _, body = api_request(api_socket, "POST", f"/containers/create?name=hostile-{uuid.uuid4().hex[:8]}",
                                  _create(image, **CREATE_BODIES[case]))
    assert status == 400, (case, body)
    assert isinstance(body, dict) and body.get("message"), body


RAW = [
    ("POST", "/containers/create", b'{"Image": "nano/busybox", "Cmd": ["true"], "HostConfig": ' + DEEP.encode() + b"}"),
    ("POST", "/containers/create", DEEP.encode()),
    ("POST", "/containers/create", b'{"Image": "nano/busybox", "StopTimeout": 1e400}'),
    ("POST", "/containers/create", b'{"Image": "nano/busybox", "StopTimeout": NaN}'),
    ("POST", "/containers/create", b"\xff\xfe not utf-8"),
    ("POST", "/containers/create", b'["a list"]'),
    ("GET", "/containers/json?filters=" + "%5B" * 5000, None),
    ("GET", "/containers/json?filters=%7B%22status%22%3A5%7D", None),
    ("GET", "/containers/json?limit=99999999999999999999999", None),
    ("GET", "/containers/json?limit=1_0", None),
    ("GET", "/images/json?filters=not-json", None),
    ("GET", "/events?since=nan&until=1", None),
    ("GET", "/events?since=1e400&until=1", None),
    ("POST", "/containers/nosuch/stop?t=99999999999999999999", None),
    ("POST", "/build?buildargs=" + "%5B" * 5000, b""),
    ("POST", "/build?buildargs=%5B1%5D", b""),
]


@pytest.mark.parametrize("method,path,body", RAW, ids=[f"{m} {p[:50]} {(b or b'')[:20]!r}" for m, p, b in RAW])
def test_malformed_values_are_4xx_with_a_message(api_socket, method, path, body):
    status, _, data = api_request(api_socket, method, path, body=body,
                                  headers={"Content-Type": "application/json"} if body else None)
    assert 400 <= status < 500, (status, data)
    assert isinstance(data, dict) and data.get("message"), data


def test_top_with_unbalanced_quote_is_400(api_socket, running):
    status, _, body = api_request(api_socket, "GET", f"/containers/{running}/top?ps_args=-o%20%22pid")
    assert status == 400 and "ps_args" in body["message"], body


def test_wrong_typed_container_never_reaches_start(api_socket, image):
    """Start once failed with a 500 on what create let through: create now refuses it."""
    status, _, body = api_request(api_socket, "POST", "/containers/create",
                                  _create(image, HostConfig={"Memory": "lots", "CpuShares": BIG}))
    assert status == 400, body


ON_RUNNING = [
    ("POST", "/containers/{c}/stop?t=99999999999999999999", None),
    ("POST", "/containers/{c}/stop?t=abc", None),
    ("POST", "/containers/{c}/kill?signal=NOPE", None),
    ("POST", "/containers/{c}/kill?signal=99999", None),
    ("POST", "/containers/{c}/kill?signal=-1", None),
    ("POST", "/containers/{c}/resize?h=-1&w=5", None),
    ("POST", "/containers/{c}/resize?h=99999999999&w=99999999999", None),
    ("GET", "/containers/{c}/top?ps_args=--nonsense-flag", None),
    ("GET", "/containers/{c}/top?ps_args=-o%20%00", None),
    ("GET", "/containers/{c}/logs?stdout=1&tail=abc", None),
    ("GET", "/containers/{c}/logs?stdout=1&since=nan", None),
    ("GET", "/containers/{c}/archive?path=", None),
    ("GET", "/containers/{c}/archive?path=%00", None),
    ("HEAD", "/containers/{c}/archive?path=/" + "a" * 5000, None),
    ("PUT", "/containers/{c}/archive?path=/tmp", b"not a tar at all" * 100),
    ("PUT", "/containers/{c}/archive?path=%00", b""),
    ("POST", "/containers/{c}/rename?name=%2F%2F%2F", None),
    ("POST", "/containers/{c}/rename?name=" + "n" * 300, None),
    ("POST", "/containers/{c}/wait?condition=whenever", None),
    ("POST", "/containers/{c}/exec", {"Cmd": "true"}),
    ("POST", "/containers/{c}/exec", {"Cmd": ["true"], "Env": "A=1"}),
    ("POST", "/containers/{c}/exec", {"Cmd": ["true"], "ConsoleSize": [1 << 64, 1]}),
    ("POST", "/containers/{c}/exec", {"Cmd": ["true"], "User": 5}),
    ("POST", "/containers/{c}/exec", {"Cmd": [], "Tty": "x"}),
    ("POST", "/commit?container={c}&changes=BOGUS%20x", None),
    ("POST", "/commit?container={c}&repo=UPPER&tag=t", None),
    ("POST", "/commit?container={c}", {"Env": "A=1"}),
    ("POST", "/containers/{c}/attach?stream=1&stdout=1&detachKeys=ctrl-%FF", None),
    ("POST", "/networks/bridge/connect", {"Container": "{c}", "EndpointConfig": "x"}),
    ("POST", "/networks/bridge/connect", {"Container": 5}),
    ("POST", "/images/nano%2Fbusybox/tag?repo=Bad%20Repo", None),
    ("POST", "/images/nano%2Fbusybox/tag?repo=ok&tag=" + "t" * 300, None),
    ("DELETE", "/images/" + "%2F" * 10, None),
    ("POST", "/volumes/create", {"Name": 5}),
    ("POST", "/volumes/create", {"Name": "a/b"}),
    ("POST", "/volumes/create", {"Labels": {"a": 1}}),
    ("POST", "/networks/create", {"Name": "n", "IPAM": {"Config": [{"Subnet": "300.1.2.3/99"}]}}),
    ("POST", "/networks/create", {"Name": "n", "IPAM": "x"}),
    ("POST", "/networks/create", {"Name": ["n"]}),
    ("POST", "/containers/{c}/update", {"Memory": "lots"}),
    ("POST", "/containers/{c}/update", {"Memory": BIG}),
    ("POST", "/containers/{c}/update", {"CpuShares": 1.5}),
    ("POST", "/containers/{c}/update", {"RestartPolicy": "always"}),
    ("POST", "/containers/{c}/update", {"PidsLimit": -BIG}),
    ("POST", "/containers/{c}/update", {"Ulimits": [{"Name": "nofile", "Soft": "x"}]}),
    ("POST", "/containers/{c}/update", {"BlkioWeight": BIG}),
]


@pytest.mark.parametrize("method,path,body", ON_RUNNING, ids=[f"{m} {p[:60]}" for m, p, _ in ON_RUNNING])
def test_malformed_values_on_a_running_container_are_4xx(api_socket, running, method, path, body):
    path = path.replace("{c}", running)
    if isinstance(body, dict):
        body = json.loads(json.dumps(body).replace("{c}", running))
    status, _, data = api_request(api_socket, method, path, body=body)
    assert status < 500, (status, data)
    if status >= 400 and method != "HEAD":
        assert isinstance(data, dict) and data.get("message"), data


# -- HTTP framing ----------------------------------------------------------------------------------------

def _raw(sock_path: str, data: bytes) -> tuple[bytes, bool]:
    """(what the server answered, whether it then closed the connection)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sock_path)
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out, True
            out += chunk
            head, sep, rest = out.partition(b"\r\n\r\n")
            if sep:
                length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length:")), None)
                if length is not None and len(rest) >= length:
                    try:
                        s.settimeout(5)
                        return out, s.recv(1) == b""
                    except TimeoutError:
                        return out, False
    finally:
        s.close()


FRAMING = {
    "negative Content-Length": b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
    "garbage Content-Length": b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n{}",
    "two Content-Lengths": b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                           b"Content-Length: 3\r\n\r\n{}",
    "huge Content-Length": b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: "
                           + b"9" * 30 + b"\r\n\r\n{}",
    "bad chunk size": b"POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\n{}\r\n0\r\n\r\n",
    "negative chunk size": b"POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"-2\r\n{}\r\n0\r\n\r\n",
    "chunk size overflow": b"POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           + b"f" * 40 + b"\r\n{}\r\n0\r\n\r\n",
    "no CRLF after chunk": b"POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"2\r\n{}XX0\r\n\r\n",
    "unknown transfer encoding": b"POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "oversize header line": b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    "too many headers": b"GET /_ping HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
                        + b"\r\n",
    "oversize request line": b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "garbage request line": b"\x16\x03\x01 hello\r\n\r\n",
}


@pytest.mark.parametrize("case", list(FRAMING))
def test_malformed_framing_is_400_and_connection_closed(api_socket, case):
    out, closed = _raw(api_socket, FRAMING[case])
    status_line = out.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 400") or status_line.startswith(b"HTTP/1.0 400"), out[:300]
    body = out.partition(b"\r\n\r\n")[2]
    assert json.loads(body)["message"], body
    assert closed
    status, _, _ = api_request(api_socket, "GET", "/_ping")  # and the server is fine
    assert status == 200


# -- image configs ---------------------------------------------------------------------------------------

def _archive(config: dict, tag: str, manifest: object = None) -> bytes:
    """A docker-save archive of one image with no layers."""
    import io
    import tarfile

    raw = json.dumps(config).encode()
    files = {"config.json": raw,
             "manifest.json": json.dumps(manifest if manifest is not None else
                                         [{"Config": "config.json", "RepoTags": [tag], "Layers": []}]).encode()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


GOOD_CONFIG = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
               "config": {"Cmd": ["true"]}}
BAD_CONFIGS = {
    "Labels as list": {"config": {"Labels": ["a"]}},
    "Env as string": {"config": {"Env": "A=1"}},
    "config as string": {"config": "x"},
    "rootfs as list": {"rootfs": []},
    "diff_ids as number": {"rootfs": {"type": "layers", "diff_ids": 5}},
    "created as number": {"created": 5},
    "history item as string": {"history": ["x"]},
    "StopTimeout past 2^63 in Healthcheck": {"config": {"Healthcheck": {"Interval": BIG}}},
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_load_refuses_wrong_typed_image_config(api_socket, case):
    tag = f"badcfg-{uuid.uuid4().hex[:8]}:latest"
    status, _, body = api_request(api_socket, "POST", "/images/load?quiet=1",
                                  body=_archive({**GOOD_CONFIG, **BAD_CONFIGS[case]}, tag),
                                  headers={"Content-Type": "application/x-tar"})
    text = json.dumps(body) if isinstance(body, (dict, list)) else body.decode(errors="replace")
    assert status == 400 or (status == 200 and "invalid image config" in text), (status, text)
    assert "invalid image config" in text
    assert api_request(api_socket, "GET", f"/images/{tag}/json")[0] == 404


@pytest.mark.parametrize("manifest", [{"not": "a list"}, ["x"], [{"Config": 5}], [{"Config": "config.json",
                                                                                   "Layers": 7}]])
def test_load_refuses_malformed_manifest(api_socket, manifest):
    status, _, body = api_request(api_socket, "POST", "/images/load?quiet=1",
                                  body=_archive(GOOD_CONFIG, "x:y", manifest=manifest),
                                  headers={"Content-Type": "application/x-tar"})
    text = json.dumps(body) if isinstance(body, (dict, list)) else body.decode(errors="replace")
    assert status == 400 or (status == 200 and "invalid archive" in text), (status, text)


def test_one_bad_stored_config_does_not_break_docker_images(api_socket, nv_root, docker):
    """A config stored before configs were checked (an older version) holds wrong types: `docker images`
    and inspect still answer, for it and for every other image."""
    from nanovisor.paths import Paths
    from nanovisor.store.db import Database

    db = Database(Paths.for_root(nv_root).db)
    bad = {"architecture": 5, "os": ["linux"], "created": 7, "rootfs": "x", "history": "x",
           "config": {"Labels": ["a", "b"], "Env": "A=1"}}
    image_id = "sha256:" + "e" * 64
    with db.transaction() as conn:
        conn.execute("INSERT INTO images (id, created, config, size) VALUES (?, 0, ?, 0)", (image_id, json.dumps(bad)))
        conn.execute("INSERT INTO image_refs (ref, image_id) VALUES (?, ?)", ("badcfg:old", image_id))
    try:
        r = docker("images")
        assert r.returncode == 0, r.stderr
        assert "badcfg" in r.stdout and "nano/busybox" in r.stdout
        r = docker("image", "inspect", "badcfg:old")
        assert r.returncode == 0, r.stderr
        r = docker("images", "--filter", "label=a")
        assert r.returncode == 0, r.stderr
    finally:
        with db.transaction() as conn:
            conn.execute("DELETE FROM image_refs WHERE image_id = ?", (image_id,))
            conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
        db.close()


def test_server_logged_no_traceback(api_socket, log_mark):
    """Everything this module sent was answered without an internal error being logged."""
    with open(log_mark[0], "rb") as f:
        f.seek(log_mark[1])
        text = f.read().decode(errors="replace")
    assert "Traceback" not in text, text[-3000:]
