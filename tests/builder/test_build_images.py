"""Real builds on a scratch root with nano/busybox: every RUN is a real container, every image is run
afterwards to check what a user would check."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from buildhelpers import container_ids, nvb, write_context

from nanovisor.engine import Engine

MULTISTAGE = """\
ARG BASE=nano/busybox
FROM ${BASE} AS build
ARG MSG=hi
ENV GREETING=hello
WORKDIR /app
COPY hello.txt sub ./
RUN echo "$MSG $GREETING" > out.txt && cp hello.txt copied.txt
FROM nano/busybox
COPY --from=build /app/out.txt /app/copied.txt /result/
ENV FROM_ENV=set
WORKDIR /result
USER nano
LABEL purpose="build test"
EXPOSE 8080/tcp
CMD ["cat", "out.txt"]
"""


def _inspect(root: Path, ref: str) -> dict:
    r = nvb(root, "image", "inspect", ref)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def test_multistage_run_env_arg_workdir_user(root, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": MULTISTAGE, "hello.txt": "hello file\n",
                                            "sub/a": "a\n"})
    r = nvb(root, "build", "-t", "buildtest/multi:1", "--build-arg", "MSG=yo", str(ctx))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Step 1/15 : ARG BASE=nano/busybox" in r.stdout
    assert " ---> Running in " in r.stdout and "Successfully tagged buildtest/multi:1" in r.stdout
    run = nvb(root, "run", "--rm", "buildtest/multi:1")
    assert (run.returncode, run.stdout) == (0, "yo hello\n"), run.stderr
    who = nvb(root, "run", "--rm", "buildtest/multi:1", "sh", "-c", 'id -un; pwd; echo "$FROM_ENV"; '
              'cat copied.txt; ls /app 2>/dev/null || echo no-app')
    assert who.stdout.split("\n")[:5] == ["nano", "/result", "set", "hello file", "no-app"], who.stderr
    cfg = _inspect(root, "buildtest/multi:1")["Config"]
    assert cfg["Labels"]["purpose"] == "build test" and "8080/tcp" in cfg["ExposedPorts"]
    assert cfg["WorkingDir"] == "/result" and cfg["User"] == "nano"


def test_cache_hit_no_cache_and_target(root, tmp_path):
    ctx = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM nano/busybox AS one\nRUN echo first > /one\n"
                      "FROM one AS two\nRUN echo second > /two\nCMD [\"cat\", \"/two\"]\n",
    })
    first = nvb(root, "build", "-q", "-t", "buildtest/cache", str(ctx))
    assert first.returncode == 0, first.stderr
    again = nvb(root, "build", "-t", "buildtest/cache", str(ctx))
    assert again.returncode == 0, again.stderr
    assert "Using cache" in again.stdout and "Running in" not in again.stdout
    assert again.stdout.strip().splitlines()[-2] == f"Successfully built {first.stdout.strip()[7:19]}"
    fresh = nvb(root, "build", "--no-cache", "-q", "-t", "buildtest/cache", str(ctx))
    assert fresh.returncode == 0 and fresh.stdout.strip() != first.stdout.strip()
    target = nvb(root, "build", "--target", "one", "-t", "buildtest/target", str(ctx))
    assert target.returncode == 0, target.stderr
    assert "Step 2/2 : RUN echo first > /one" in target.stdout and "/two" not in target.stdout
    r = nvb(root, "run", "--rm", "buildtest/target", "sh", "-c", "cat /one; ls /two 2>&1 || true")
    assert r.stdout.startswith("first\n") and "No such file" in r.stdout
    bad = nvb(root, "build", "--target", "nope", str(ctx))
    assert bad.returncode != 0 and "failed to reach build target nope in Dockerfile" in bad.stderr


def test_dockerignore_add_tar_and_chown(root, tmp_path):
    src = tmp_path / "tarsrc"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "data.txt").write_text("from the tar\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(src / "pkg", arcname="pkg")
    ctx = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM nano/busybox\nADD bundle.tgz /opt/\nCOPY --chown=nano:nano . /ctx/\n"
                      "COPY *.txt /glob/\n",
        ".dockerignore": "secret.txt\n**/*.log\n!keep.log\n",
        "bundle.tgz": buf.getvalue(), "secret.txt": "no\n", "public.txt": "yes\n", "x/debug.log": "no\n",
        "keep.log": "kept\n",
    })
    r = nvb(root, "build", "-t", "buildtest/ignore", str(ctx))
    assert r.returncode == 0, r.stdout + r.stderr
    out = nvb(root, "run", "--rm", "buildtest/ignore", "sh", "-c",
              "cat /opt/pkg/data.txt; ls /ctx | sort | tr '\\n' ' '; echo; ls /glob; stat -c %U /ctx/public.txt")
    lines = out.stdout.splitlines()
    assert lines[0] == "from the tar", out.stderr
    assert lines[1].split() == sorted(["Dockerfile", "bundle.tgz", "keep.log", "public.txt", "x"])
    assert lines[2:] == ["public.txt", "nano"] and "secret.txt" not in out.stdout


def test_failing_run_reports_exit_code_and_leaves_no_container(root, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM nano/busybox\nRUN echo before; exit 7\n"})
    before = container_ids(root)
    r = nvb(root, "build", "-t", "buildtest/fail", str(ctx))
    assert r.returncode == 7
    assert "The command '/bin/sh -c echo before; exit 7' returned a non-zero code: 7" in r.stderr
    assert "before\n" in r.stdout
    assert container_ids(root) == before
    assert nvb(root, "image", "inspect", "buildtest/fail").returncode != 0


def test_build_stream_from_tar_context(root):
    """What POST /build streams: a tar context, JSON messages, aux ID, errors as errorDetail."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in {"Dockerfile": b"FROM nano/busybox\nCOPY f /f\nRUN cat /f\n", "f": b"tarred\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    engine = Engine(root)
    from nanovisor.builder import build_stream

    buf.seek(0)
    msgs = list(build_stream(engine, buf, tags=["buildtest/stream:x"]))
    text = "".join(m.get("stream", "") for m in msgs)
    assert "Step 3/3 : RUN cat /f" in text and "tarred\n" in text
    aux = [m["aux"]["ID"] for m in msgs if "aux" in m]
    assert aux and aux[-1] == engine.images.resolve("buildtest/stream:x").id
    assert msgs[-1] == {"stream": "Successfully tagged buildtest/stream:x\n"}

    bad = io.BytesIO()
    with tarfile.open(fileobj=bad, mode="w") as tf:
        data = b"FROM nano/busybox\nRUN exit 5\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    bad.seek(0)
    last = list(build_stream(engine, bad))[-1]
    assert last["errorDetail"] == {"code": 5, "message": last["error"]}
    assert "returned a non-zero code: 5" in last["error"]


def test_hostile_context_is_refused(root, tmp_path):
    bad = io.BytesIO()
    with tarfile.open(fileobj=bad, mode="w") as tf:
        data = b"owned\n"
        info = tarfile.TarInfo("../../escaped-by-build")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    bad.seek(0)
    from nanovisor.builder import build_stream

    msgs = list(build_stream(Engine(root), bad))
    assert "error" in msgs[-1] and "escapes" in msgs[-1]["error"]
    assert not (root.parent / "escaped-by-build").exists() and not Path("/escaped-by-build").exists()
    assert not list((root / "tmp").glob("build-context-*"))


def test_onbuild_scratch_and_refused_url(root, tmp_path):
    parent = write_context(tmp_path / "parent", {"Dockerfile": "FROM nano/busybox\n"
                                                 "ONBUILD RUN echo triggered > /trig\n"})
    assert nvb(root, "build", "-t", "buildtest/onbuild", str(parent)).returncode == 0
    child = write_context(tmp_path / "child", {
        "Dockerfile": "FROM buildtest/onbuild AS kid\nFROM scratch\nCOPY --from=kid /trig /bin/busybox /\n"
                      "ENTRYPOINT [\"/busybox\"]\nCMD [\"cat\", \"/trig\"]\n"})
    r = nvb(root, "build", "-t", "buildtest/child", str(child))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "# Executing 1 build trigger" in r.stdout
    assert nvb(root, "run", "--rm", "buildtest/child").stdout == "triggered\n"
    info = _inspect(root, "buildtest/child")
    assert not info["Config"].get("OnBuild") and len(info["RootFS"]["Layers"]) == 1
    url = write_context(tmp_path / "url", {"Dockerfile": "FROM nano/busybox\nADD http://example.invalid/x /x\n"})
    r = nvb(root, "build", str(url))
    assert r.returncode == 1 and "remote URLs are not supported" in r.stderr
