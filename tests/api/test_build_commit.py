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

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)

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
