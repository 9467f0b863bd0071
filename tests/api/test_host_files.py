"""The daemon reads no host file a request names: a seccomp profile comes as JSON content (the docker CLI
reads the file on the client's side), and a build context's `.dockerignore` / Dockerfile symlinks resolve
inside the context."""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid

from apihelpers import api_request
from nvtest import run_cli


def test_seccomp_path_refused_with_400_and_a_fifo_never_opened(api_socket, image, tmp_path):
    fifo = tmp_path / "profile.fifo"
    os.mkfifo(fifo)
    for value in ("/etc/passwd", str(fifo), "relative/profile.json"):
        status, _, body = api_request(api_socket, "POST", "/containers/create", {
            "Image": image, "Cmd": ["true"], "HostConfig": {"SecurityOpt": [f"seccomp={value}"]}})
        assert status == 400, body
        assert "not a path" in body["message"]
    status, _, body = api_request(api_socket, "POST", "/containers/create", {
        "Image": image, "Cmd": ["true"], "HostConfig": {"SecurityOpt": ["seccomp={broken"]}})
    assert status == 400 and "Decoding seccomp profile failed" in body["message"]


def test_docker_cli_sends_the_profile_content(docker, image, tmp_path, name):
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}, indent=2))
    r = docker("run", "--rm", "--name", name, "--security-opt", f"seccomp={profile}", image,
               "sh", "-c", "mkdir /x; echo rc=$?")
    assert r.returncode == 0, r.stderr
    assert "rc=1" in r.stdout
    r = docker("run", "--rm", "--security-opt", "seccomp=unconfined", image, "sh", "-c", "mkdir /x; echo rc=$?")
    assert "rc=0" in r.stdout, r.stderr


def test_embedded_cli_reads_the_profile_file_itself(nv_root, image, tmp_path):
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    r = run_cli(nv_root, "run", "--rm", "--security-opt", f"seccomp={profile}", image, "sh", "-c",
                "mkdir /x; echo rc=$?")
    assert "rc=1" in r.stdout, r.stderr


def _context(members: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(data[m.name]) if m.name in data else None)
    return buf.getvalue()


def _file(name: str, content: bytes) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size = len(content)
    return ti


def _link(name: str, target: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.SYMTYPE, target
    return ti


def _build(client, ctx: bytes, dockerfile: str = "Dockerfile") -> tuple[str | None, list]:
    tag = f"hostfiles-{uuid.uuid4().hex[:8]}"
    out = list(client.api.build(fileobj=io.BytesIO(ctx), custom_context=True, tag=tag, decode=True,
                                dockerfile=dockerfile, rm=True))
    return (tag if not any("error" in o for o in out) else None), out


def test_dockerignore_symlink_resolves_inside_the_context(client, tmp_path):
    host_rules = tmp_path / "host-ignore"      # a host file that would exclude secret.txt if followed
    host_rules.write_text("secret.txt\n")
    dockerfile = b"FROM nano/busybox\nCOPY . /ctx/\n"
    data = {"Dockerfile": dockerfile, "secret.txt": b"s\n", "kept.txt": b"k\n", "rules": b"kept.txt\n"}
    ctx = _context([_file("Dockerfile", dockerfile), _file("secret.txt", data["secret.txt"]),
                    _file("kept.txt", data["kept.txt"]), _file("rules", data["rules"]),
                    _link(".dockerignore", str(host_rules))], data)
    tag, out = _build(client, ctx)
    assert tag, out
    try:
        listing = client.containers.run(tag, ["ls", "/ctx"], remove=True).decode().split()
        assert "secret.txt" in listing   # the host's rules were never read
    finally:
        client.images.remove(tag, force=True)
    # a link to a file inside the context is followed there: its rules apply
    ctx = _context([_file("Dockerfile", dockerfile), _file("secret.txt", data["secret.txt"]),
                    _file("kept.txt", data["kept.txt"]), _file("rules", data["rules"]),
                    _link(".dockerignore", "../../rules")], data)
    tag, out = _build(client, ctx)
    assert tag, out
    try:
        listing = client.containers.run(tag, ["ls", "/ctx"], remove=True).decode().split()
        assert "kept.txt" not in listing and "secret.txt" in listing
    finally:
        client.images.remove(tag, force=True)


def test_dockerfile_symlink_to_host_file_is_not_read(client, tmp_path):
    host_df = tmp_path / "Dockerfile.host"
    host_df.write_text("FROM nano/busybox\nRUN echo HOST-DOCKERFILE-WAS-READ\n")
    ctx = _context([_link("Dockerfile", str(host_df))], {})
    tag, out = _build(client, ctx)
    assert tag is None
    assert "Cannot locate specified Dockerfile" in json.dumps(out)
    assert "HOST-DOCKERFILE-WAS-READ" not in json.dumps(out)
