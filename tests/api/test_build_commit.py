"""POST /build (legacy builder) through `DOCKER_BUILDKIT=0 docker build` and docker-py, and POST /commit
through `docker commit` and docker-py; every image made is run to check what is in it."""

from __future__ import annotations

import io
import tarfile
import uuid

import pytest
from apihelpers import api_request, response_validator

DOCKERFILE = """\
FROM nano/busybox
ARG MSG=default-msg
RUN echo "built $MSG" > /built.txt
COPY greeting.txt /greeting.txt
LABEL stage=test
CMD ["sh", "-c", "cat /built.txt /greeting.txt"]
"""


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    d = tmp_path_factory.mktemp("build-ctx")
    (d / "Dockerfile").write_text(DOCKERFILE)
    (d / "greeting.txt").write_text("hello from the context\n")
    (d / "Dockerfile.fail").write_text("FROM nano/busybox\nRUN echo before && exit 3\n")
    return d


@pytest.fixture
def legacy_docker(docker_env):
    """The docker CLI with the legacy builder (what POST /build serves)."""
    import subprocess

    env = {**docker_env, "DOCKER_BUILDKIT": "0"}

    def run(*args: str, timeout: float = 300, cwd=None) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=cwd)

    return run


def _tag() -> str:
    return "built-" + uuid.uuid4().hex[:8]


def test_docker_build_then_run(legacy_docker, docker, context):
    tag = _tag()
    r = legacy_docker("build", "-t", f"{tag}:1", "--build-arg", "MSG=with-arg", "--label", "extra=yes",
                      str(context))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Step 1/7 : FROM nano/busybox" in r.stdout  # --label adds a last LABEL step, as in moby
    assert "Successfully built " in r.stdout
    assert f"Successfully tagged {tag}:1" in r.stdout
    try:
        run = docker("run", "--rm", f"{tag}:1")
        assert run.returncode == 0, run.stderr
        assert run.stdout == "built with-arg\nhello from the context\n"
        labels = docker("image", "inspect", "--format", "{{json .Config.Labels}}", f"{tag}:1").stdout
        assert '"stage":"test"' in labels and '"extra":"yes"' in labels
        # the same build again comes from the cache
        again = legacy_docker("build", "-q", "-t", f"{tag}:2", "--build-arg", "MSG=with-arg", "--label",
                              "extra=yes", str(context))
        assert again.returncode == 0, again.stderr
        first_id = docker("image", "inspect", "--format", "{{.Id}}", f"{tag}:1").stdout.strip()
        assert again.stdout.strip() == first_id
    finally:
        docker("rmi", f"{tag}:1", f"{tag}:2")


def test_docker_build_failing_step(legacy_docker, docker, context):
    tag = _tag()
    r = legacy_docker("build", "-f", str(context / "Dockerfile.fail"), "-t", tag, str(context))
    assert r.returncode != 0
    assert "before" in r.stdout
    assert "returned a non-zero code: 3" in r.stderr
    assert docker("image", "inspect", tag).returncode == 1


def test_docker_py_build_from_path_and_fileobj(client, context):
    tag = _tag()
    image, logs = client.images.build(path=str(context), tag=tag, buildargs={"MSG": "from-py"},
                                      labels={"via": "docker-py"}, rm=True)
    try:
        assert f"{tag}:latest" in image.tags
        assert image.labels["via"] == "docker-py"
        assert any("Successfully built" in (line.get("stream") or "") for line in logs)
        out = client.containers.run(tag, remove=True)
        assert out == b"built from-py\nhello from the context\n"
    finally:
        client.images.remove(tag)
    # a gzip'd context from a file object, the Dockerfile named explicitly
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"FROM nano/busybox\nCMD [\"echo\", \"from a fileobj\"]\n"
        info = tarfile.TarInfo("build/Containerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    image, _ = client.images.build(fileobj=buf, custom_context=True, encoding="gzip",
                                   dockerfile="build/Containerfile", tag=tag)
    try:
        assert client.containers.run(tag, remove=True) == b"from a fileobj\n"
    finally:
        client.images.remove(tag)


def test_build_bad_parameters(api_socket):
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        data = b"FROM nano/busybox\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    body = tar.getvalue()
    headers = {"Content-Type": "application/x-tar"}
    status, _, err = api_request(api_socket, "POST", "/build?t=Bad%3ATag%3Ax", body, headers)
    assert status == 400 and "invalid reference format" in err["message"]
    status, _, err = api_request(api_socket, "POST", "/build?remote=https%3A%2F%2Fexample.invalid%2Fx.git",
                                 body, headers)
    assert status == 400
    status, _, err = api_request(api_socket, "POST", "/build?version=2", body, headers)
    assert status == 400 and "buildkit" in err["message"]
    status, _, err = api_request(api_socket, "POST", "/build?squash=1", body, headers)
    assert status == 400 and "experimental" in err["message"]
    status, _, err = api_request(api_socket, "POST", "/build?buildargs=%7Bnot-json", body, headers)
    assert status == 400 and "error reading build args" in err["message"]


def test_builder_prune(docker, api_socket):
    r = docker("builder", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert "Total reclaimed space: 0B" in r.stdout
    status, _, body = api_request(api_socket, "POST", "/build/prune")
    assert status == 200
    response_validator("/build/prune", "post", 200).validate(body)


def test_docker_commit_running_container(docker, running):
    assert docker("exec", running, "sh", "-c", "echo state > /committed.txt").returncode == 0
    tag = "committed-" + uuid.uuid4().hex[:8]
    r = docker("commit", "-m", "a message", "-a", "someone", "-c", 'CMD ["cat", "/committed.txt"]', running,
               f"{tag}:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sha256:")
    assert docker("image", "inspect", "--format", "{{.Id}}", f"{tag}:1").stdout == r.stdout
    try:
        assert docker("inspect", "--format", "{{.State.Running}} {{.State.Paused}}", running).stdout.split() \
            == ["true", "false"]
        out = docker("run", "--rm", f"{tag}:1")
        assert (out.returncode, out.stdout) == (0, "state\n"), out.stderr
        meta = docker("image", "inspect", "--format", "{{.Comment}}|{{.Author}}", f"{tag}:1").stdout.strip()
        assert meta == "a message|someone"
    finally:
        docker("rmi", f"{tag}:1")


def test_docker_py_commit(client, running):
    c = client.containers.get(running)
    c.exec_run(["sh", "-c", "echo py-state > /py.txt"])
    tag = "pycommit-" + uuid.uuid4().hex[:8]
    image = c.commit(repository=tag, tag="v1", conf={"Cmd": ["cat", "/py.txt"], "Env": ["FROM_CONF=1"]})
    try:
        assert f"{tag}:v1" in image.tags
        assert "FROM_CONF=1" in image.attrs["Config"]["Env"]
        assert client.containers.run(f"{tag}:v1", remove=True) == b"py-state\n"
    finally:
        client.images.remove(f"{tag}:v1")


def test_commit_missing_container(docker):
    r = docker("commit", "no-such-container-xyz", "x-never")
    assert r.returncode == 1
    assert "No such container: no-such-container-xyz" in r.stderr


# -- issue 9: what scripts and SDKs use ------------------------------------------------------------------


def _built_id(stdout: str) -> str:
    return next(line.split()[-1] for line in stdout.splitlines() if line.startswith("Successfully built "))


def _full_id(docker, ref: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


def test_dockerfile_outside_the_context(legacy_docker, docker, client, tmp_path):
    """`-f ../Dockerfile`: the CLI puts it in the context tar under a generated name and lists that name in
    .dockerignore, so it is not copied (.dockerignore itself is, not being listed: as with dockerd)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "app.txt").write_text("app\n")
    (ctx / "secret.txt").write_text("no\n")
    (ctx / ".dockerignore").write_text("secret.txt\n")
    (tmp_path / "Dockerfile").write_text("FROM nano/busybox\nCOPY . /ctx/\nCMD [\"ls\", \"-A\", \"/ctx\"]\n")
    tag = _tag()
    r = legacy_docker("build", "-f", "../Dockerfile", "-t", tag, ".", cwd=ctx)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        assert docker("run", "--rm", tag).stdout == ".dockerignore\napp.txt\n"
    finally:
        docker("rmi", tag)
    image, _ = client.images.build(path=str(ctx), dockerfile="../Dockerfile", tag=tag)
    try:
        listed = client.containers.run(tag, remove=True).decode().split()
        assert "app.txt" in listed and "secret.txt" not in listed
    finally:
        client.images.remove(tag)


def test_run_stderr_is_in_the_build_stream(legacy_docker, client, tmp_path):
    """A RUN step's stderr reaches the client, in red, as dockerd's legacy builder sends it."""
    (tmp_path / "Dockerfile").write_text(f"FROM nano/busybox\nRUN echo out-{uuid.uuid4().hex[:6]} && "
                                         "echo to-stderr >&2\n")
    r = legacy_docker("build", "--no-cache", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "\x1b[91mto-stderr\n\x1b[0m" in r.stdout
    _, logs = client.images.build(path=str(tmp_path), nocache=True)
    streams = [m.get("stream") for m in logs]
    assert "\x1b[91mto-stderr\n\x1b[0m" in streams
    assert any(s and s.startswith("out-") for s in streams)


def test_cache_from_uses_only_the_given_images(legacy_docker, docker, client, tmp_path):
    token = uuid.uuid4().hex[:8]
    (tmp_path / "Dockerfile").write_text(f"FROM nano/busybox\nENV TOKEN={token}\nRUN echo $TOKEN > /token\n"
                                         "COPY Dockerfile /df\nCMD [\"cat\", \"/token\"]\n")
    tag = _tag()
    first = legacy_docker("build", "-t", tag, str(tmp_path))
    assert first.returncode == 0, first.stderr
    image_id = _full_id(docker, tag)
    save = tmp_path / "saved.tar"
    try:
        # without --cache-from the local cache serves; with unrelated sources it does not (dockerd's rule)
        assert legacy_docker("build", str(tmp_path)).stdout.count(" ---> Using cache") == 4
        unrelated = legacy_docker("build", "--cache-from", "nano/busybox", str(tmp_path))
        assert unrelated.returncode == 0, unrelated.stderr
        assert " ---> Using cache" not in unrelated.stdout
        docker("rmi", _built_id(unrelated.stdout))

        # an image that has no local build history (as after a pull): its layers are the cache
        steps = [i for i in docker("history", "-q", tag).stdout.split() if i != "<missing>"][:4]
        assert len(steps) == 4 and image_id.removeprefix("sha256:").startswith(steps[0])
        assert docker("save", "-o", str(save), tag).returncode == 0
        assert docker("rmi", tag).returncode == 0  # its untagged step images go with it, as in dockerd
        assert all(docker("image", "inspect", step).returncode != 0 for step in steps[1:])
        assert docker("load", "-i", str(save)).returncode == 0
        r = legacy_docker("build", "--cache-from", tag, str(tmp_path))
        assert r.returncode == 0, r.stderr
        assert r.stdout.count(" ---> Using cache") == 4 and " ---> Running in " not in r.stdout
        assert _full_id(docker, _built_id(r.stdout)) == image_id
        image, logs = client.images.build(path=str(tmp_path), cache_from=[tag])
        assert image.id == image_id and sum("Using cache" in (m.get("stream") or "") for m in logs) == 4
        assert client.containers.run(image.id, remove=True) == f"{token}\n".encode()
    finally:
        docker("rmi", tag)


@pytest.fixture
def http_on_loopback():
    """A one-file HTTP server on 127.0.0.1 of the test's network namespace (where serve runs too)."""
    import http.server
    import threading

    body = uuid.uuid4().hex.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", body.decode()
    server.shutdown()
    server.server_close()


def test_add_host_target_and_network_modes(legacy_docker, docker, client, tmp_path, http_on_loopback):
    url, body = http_on_loopback
    (tmp_path / "Dockerfile").write_text(
        "FROM nano/busybox AS probe\n"
        f"RUN echo {uuid.uuid4().hex} && grep myhost /etc/hosts && cut -d: -f1 /proc/net/dev | tail -n +3\n"
        "FROM probe AS fetch\n"
        f"RUN wget -q -O /fetched {url}\n"
        "FROM fetch\n"
        "RUN echo never-built\n")
    r = legacy_docker("build", "--add-host", "myhost:10.9.8.7", "--network", "none", "--target", "probe",
                      str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "10.9.8.7\tmyhost" in r.stdout
    assert [w for w in r.stdout.split() if w in ("lo", "eth0")] == ["lo"]  # no interface but loopback
    assert "Step 2/2 :" in r.stdout and "never-built" not in r.stdout
    docker("rmi", _built_id(r.stdout))

    refused = legacy_docker("build", "--add-host", "myhost:10.9.8.7", "--network", "none", "--target", "fetch",
                            str(tmp_path))
    assert refused.returncode != 0 and "wget" in refused.stderr
    tag = _tag()
    r = legacy_docker("build", "--add-host", "myhost=10.9.8.7", "--network", "host", "--target", "fetch", "-t",
                      tag, str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        assert docker("run", "--rm", tag, "cat", "/fetched").stdout == body
    finally:
        docker("rmi", tag)
    image, logs = client.images.build(path=str(tmp_path), extra_hosts={"myhost": "10.9.8.7"}, target="probe",
                                      network_mode="bridge", nocache=True)
    text = "".join(m.get("stream") or "" for m in logs)
    assert "10.9.8.7\tmyhost" in text and "eth0" in text  # the default bridge
    client.images.remove(image.id)


def test_args_before_from(legacy_docker, docker, tmp_path):
    """ARG before FROM: usable in FROM lines; inside a stage only when declared again (then with its value)."""
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE=nano/no-such-image\nARG FLAVOUR=plain\nARG UNDECLARED=global\n"
        "FROM ${BASE} AS first\nARG FLAVOUR\nRUN echo \"$FLAVOUR/${UNDECLARED:-unset}\" > /args\n"
        "FROM $BASE\nCOPY --from=first /args /args\nRUN echo \"${FLAVOUR:-unset}\" >> /args\n"
        "CMD [\"cat\", \"/args\"]\n")
    tag = _tag()
    r = legacy_docker("build", "--build-arg", "BASE=nano/busybox", "--build-arg", "FLAVOUR=spicy", "-t", tag,
                      str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Step 4/10 : FROM ${BASE} AS first" in r.stdout and "were not consumed" not in r.stdout
    try:
        assert docker("run", "--rm", tag).stdout == "spicy/unset\nunset\n"
    finally:
        docker("rmi", tag)


def test_commit_and_build_steps_record_their_parent(docker, legacy_docker, running, image, tmp_path):
    tag = "parent-" + uuid.uuid4().hex[:8]
    r = docker("commit", running, tag)
    assert r.returncode == 0, r.stderr
    try:
        base_id = _full_id(docker, image)
        assert docker("image", "inspect", "--format", "{{.Parent}}", tag).stdout.strip() == base_id
        history = docker("history", "-q", "--no-trunc", tag).stdout.split()
        assert history[:2] == [r.stdout.strip(), base_id]
    finally:
        docker("rmi", tag)
    (tmp_path / "Dockerfile").write_text(f"FROM nano/busybox\nLABEL step={uuid.uuid4().hex}\n"
                                         "RUN echo x > /x\n")
    b = legacy_docker("build", "-t", tag, str(tmp_path))
    assert b.returncode == 0, b.stderr
    try:
        steps = [line.split()[-1] for line in b.stdout.splitlines() if line.startswith(" ---> ")
                 and "Running in" not in line and "Removed" not in line]
        assert len(steps) == 3  # FROM, LABEL, RUN
        for parent, child in zip(steps, steps[1:], strict=False):
            shown = docker("image", "inspect", "--format", "{{.Parent}}", child).stdout.strip()
            assert shown.removeprefix("sha256:").startswith(parent)
    finally:
        docker("rmi", tag)


def test_rmi_keeps_parents_with_children_and_prunes_untagged_ones(docker, legacy_docker, image, tmp_path):
    """dockerd's rules: an image others were built from cannot be deleted (not even forced); deleting the
    last image of a build takes its untagged step images with it, never a tagged base."""
    tag = "rmi-chain-" + uuid.uuid4().hex[:8]
    (tmp_path / "Dockerfile").write_text(f"FROM nano/busybox\nLABEL step={uuid.uuid4().hex}\nRUN echo x > /x\n")
    b = legacy_docker("build", "-t", tag, str(tmp_path))
    assert b.returncode == 0, b.stderr
    final = _full_id(docker, tag)
    middle = docker("image", "inspect", "--format", "{{.Parent}}", tag).stdout.strip()
    assert middle and middle != _full_id(docker, image)
    for args in (["rmi", middle], ["rmi", "-f", middle]):
        r = docker(*args)
        assert r.returncode != 0
        assert "(cannot be forced) - image has dependent child images" in r.stderr
    r = docker("rmi", tag)
    assert r.returncode == 0, r.stderr
    deleted = [line.split()[-1] for line in r.stdout.splitlines() if line.startswith("Deleted:")]
    assert final in deleted and middle in deleted
    assert docker("image", "inspect", middle).returncode != 0
    assert docker("image", "inspect", image).returncode == 0  # the tagged base stays
