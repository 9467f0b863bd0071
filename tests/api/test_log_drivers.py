"""Log drivers as dockerd has them, through the real docker CLI and docker-py: json-file in dockerd's on-disk
format (the default) with --log-opt max-size/max-file/compress rotation, local, none, and dockerd's refusals."""

from __future__ import annotations

import gzip
import json
import re
import threading
from pathlib import Path

import pytest
from nvtest import wait_for

ISOLATIONS = [pytest.param("process", id="process"), pytest.param("hyperv", id="vm", marks=pytest.mark.vm)]
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def _inspect(docker, name: str) -> dict:
    r = docker("inspect", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def _json_lines(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("iso", ISOLATIONS)
def test_json_file_is_dockerds_format_and_the_default(docker, image, name, iso):
    script = r'echo "out <a&b> \"q\""; echo err >&2; printf "no newline"'
    r = docker("run", "--name", name, f"--isolation={iso}", image, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    try:
        info = _inspect(docker, name)
        assert info["HostConfig"]["LogConfig"]["Type"] == "json-file"
        path = Path(info["LogPath"])
        assert path.name == f"{info['Id']}-json.log"
        entries = _json_lines(path)
        by_stream = {s: [e["log"] for e in entries if e["stream"] == s] for s in ("stdout", "stderr")}
        assert by_stream == {"stdout": ['out <a&b> "q"\n', "no newline"], "stderr": ["err\n"]}  # 2 pipes: no order
        assert all(RFC3339_UTC.match(e["time"]) for e in entries)
        assert "\\u003ca\\u0026b\\u003e" in path.read_text()  # escaped as Go's encoder writes it
        logs = docker("logs", name)
        assert logs.stdout == 'out <a&b> "q"\nno newline' and logs.stderr == "err\n"
        stamped = docker("logs", "-t", name).stdout.split("\n")[0]
        assert RFC3339_UTC.match(stamped.split(" ")[0])
    finally:
        docker("rm", "-f", name)


def test_info_names_the_drivers(docker):
    info = json.loads(docker("info", "--format", "{{json .}}").stdout)
    assert info["LoggingDriver"] == "json-file"
    assert {"json-file", "local", "none"} <= set(info["Plugins"]["Log"])


def test_max_size_and_max_file_rotate_like_dockerd(docker, image, name):
    r = docker("run", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=3", image,
               "sh", "-c", "seq 1 400")
    assert r.returncode == 0, r.stderr
    try:
        path = Path(_inspect(docker, name)["LogPath"])
        files = sorted(p.name for p in path.parent.glob(path.name + "*"))
        assert files == [path.name, path.name + ".1", path.name + ".2"]
        assert all(p.stat().st_size < 1024 + 100 for p in path.parent.glob(path.name + "*"))
        kept = [int(e["log"]) for f in (".2", ".1", "") for e in _json_lines(Path(str(path) + f))]
        lines = [int(x) for x in docker("logs", name).stdout.split()]
        assert lines == kept and lines[-1] == 400 and lines == list(range(lines[0], 401))
        assert docker("logs", "--tail", "5", name).stdout.split() == ["396", "397", "398", "399", "400"]
    finally:
        docker("rm", "-f", name)


def test_compress_gzips_the_rotated_files(docker, image, name):
    r = docker("run", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=4",
               "--log-opt", "compress=true", image, "sh", "-c", "seq 1 300")
    assert r.returncode == 0, r.stderr
    try:
        path = Path(_inspect(docker, name)["LogPath"])
        wait_for(lambda: Path(str(path) + ".1.gz").exists() and not Path(str(path) + ".1").exists(), timeout=10)
        assert _json_lines(Path(str(path) + ".1.gz"))[-1]["stream"] == "stdout"
        lines = [int(x) for x in docker("logs", name).stdout.split()]
        assert lines[-1] == 300 and lines == list(range(lines[0], 301))
    finally:
        docker("rm", "-f", name)


def test_logs_accumulate_across_restarts(docker, image, name):
    r = docker("run", "--name", name, image, "echo", "once")
    assert r.returncode == 0, r.stderr
    try:
        assert docker("start", "-a", name).stdout == "once\n"
        assert docker("logs", name).stdout == "once\nonce\n"
    finally:
        docker("rm", "-f", name)


def test_local_driver(docker, image, name):
    r = docker("run", "--name", name, "--log-driver", "local", image, "sh", "-c", "echo a; echo b >&2")
    assert r.returncode == 0, r.stderr
    try:
        info = _inspect(docker, name)
        assert info["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {}}
        assert info["LogPath"] == ""
        logs = docker("logs", name)
        assert (logs.stdout, logs.stderr) == ("a\n", "b\n")
    finally:
        docker("rm", "-f", name)


def test_none_keeps_nothing_and_logs_says_so(docker, image, name):
    r = docker("run", "--name", name, "--log-driver", "none", image, "echo", "live")
    try:
        assert r.returncode == 0 and r.stdout == "live\n"  # attach still streams the output
        logs = docker("logs", name)
        assert logs.returncode != 0
        assert "configured logging driver does not support reading" in logs.stderr
        assert _inspect(docker, name)["LogPath"] == ""
    finally:
        docker("rm", "-f", name)


@pytest.mark.parametrize("args, message", [
    (["--log-driver", "nosuch"], "logger: no log driver named 'nosuch' is registered"),
    (["--log-opt", "colour=red"], "unknown log opt 'colour' for json-file log driver"),
    (["--log-driver", "local", "--log-opt", "tag=x"], "unknown log opt 'tag' for log driver local"),
    (["--log-opt", "max-file=0"], "max-file cannot be less than 1"),
    (["--log-opt", "max-size=-5"], "invalid size"),
    (["--log-opt", "compress=true"], "compress cannot be true when max-file is less than 2"),
    (["--log-opt", "mode=fast"], "logger: logging mode not supported: fast"),
])
def test_bad_log_config_is_refused_at_create(docker, image, name, args, message):
    r = docker("create", "--name", name, *args, image, "true")
    assert r.returncode != 0
    assert message in r.stderr and r.stderr.count("\n") == 1
    assert docker("inspect", name).returncode != 0  # nothing was created


def test_docker_py_run_returns_all_output_under_parallel_load(client, image):
    """containers.run waits for the exit, then reads the log: every line must be there by then."""
    results: dict[int, bytes | BaseException] = {}

    def run(i: int) -> None:
        try:
            results[i] = client.containers.run(image, ["sh", "-c", "seq 1 2000"], remove=True)
        except BaseException as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    expected = "".join(f"{n}\n" for n in range(1, 2001)).encode()
    assert all(results.get(i) == expected for i in range(6)), {i: str(v)[:200] for i, v in results.items()}


def test_follow_sees_lines_across_rotations(client, image, name):
    c = client.containers.run(image, ["sh", "-c", "sleep 1; for i in $(seq 1 300); do echo $i; done; sleep 1"],
                              name=name, detach=True, log_config={"Type": "json-file",
                                                                  "Config": {"max-size": "2k", "max-file": "5"}})
    try:
        seen = [int(x) for x in b"".join(c.logs(stream=True, follow=True)).split()]
        assert seen[-1] == 300 and seen == sorted(seen) and len(seen) == len(set(seen))
    finally:
        c.remove(force=True)


def test_hostile_output_and_options_stay_bounded(docker, image, name):
    """A huge max-file costs nothing until the files exist; a 3 MB line with no newline comes back whole."""
    r = docker("run", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=1000000000", image,
               "sh", "-c", "seq 1 200; head -c 3000000 /dev/zero | tr '\\0' x")
    assert r.returncode == 0, r.stderr
    try:
        path = Path(_inspect(docker, name)["LogPath"])
        assert len(list(path.parent.glob(path.name + ".*"))) > 5
        out = docker("logs", name).stdout
        numbers, _, tail = out.rpartition("\n")
        assert numbers.split() == [str(n) for n in range(1, 201)]
        assert tail == "x" * 3000000
    finally:
        docker("rm", "-f", name)


def test_serve_log_defaults_merge_like_dockerd(nv_root, docker_env, image, name, tmp_path):
    """`serve --log-driver/--log-opt` (dockerd's daemon flags): a container naming no driver gets them, its own
    options win, another driver gets none of them; a bad default stops serve with dockerd's words."""
    import subprocess
    import sys

    from apihelpers import ServeProcess, docker_cli

    sock = tmp_path / "docker.sock"
    server = ServeProcess(nv_root, [f"unix://{sock}"], tmp_path / "serve.log",
                          extra=["--log-opt", "max-size=1k", "--log-opt", "max-file=2"])
    docker = docker_cli({**docker_env, "DOCKER_HOST": f"unix://{sock}"})

    try:
        server.wait_ready(sock=str(sock))
        assert docker("info", "--format", "{{.LoggingDriver}}").stdout.strip() == "json-file"
        cases = {"": {"max-size": "1k", "max-file": "2"}, "--log-opt=max-file=3": {"max-size": "1k", "max-file": "3"},
                 "--log-driver=local": {}}
        for i, (flag, config) in enumerate(cases.items()):
            r = docker("create", "--name", f"{name}-{i}", *([flag] if flag else []), image, "true")
            assert r.returncode == 0, r.stderr
            got = json.loads(docker("inspect", "-f", "{{json .HostConfig.LogConfig.Config}}", f"{name}-{i}").stdout)
            assert got == config, flag
    finally:
        for i in range(3):
            docker("rm", "-f", f"{name}-{i}")
        server.stop()
    bad = subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(nv_root), "serve", "--log-driver",
                          "nosuch", "--host", f"unix://{tmp_path}/bad.sock"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode != 0 and "logger: no log driver named 'nosuch' is registered" in bad.stderr
