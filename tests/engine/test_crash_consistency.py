"""Crash consistency: `serve` killed with SIGKILL at random points of run/create/stop/rm/load/build bursts, 22
times, restarted each time: what every container is shown as is what it is (runtime state, process alive), no
conmon or container process is left for a container that does not run, no mount is left under the root but a
running container's rootfs, no half-unpacked layer or scratch dir survives, `docker images` and `docker ps -a`
work, and everything can be removed at the end."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from nvtest import IMAGE, mounts_under, run_cli

from nanovisor.paths import Paths

ROUNDS = 22
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _docker_env(sock: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(sock.parent / "dockercfg"), DOCKER_BUILDKIT="0")
    return env


def _docker(sock: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, env=_docker_env(sock),
                          timeout=timeout)


def _start_serve(root: Path, sock: Path, log: Path) -> subprocess.Popen:
    sock.unlink(missing_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nanovisor", "--root", str(root), "serve", "--host",
                                 f"unix://{sock}"], stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while not sock.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            proc.wait()
            pytest.fail("serve did not come up:\n" + log.read_text()[-3000:])
        time.sleep(0.02)
    return proc


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _archive(path: Path, rng: random.Random, tag: str) -> None:
    """A small `docker save` archive of a one-layer image with a layer no other image has (so it is unpacked)."""
    layer = _tar({"blob": rng.randbytes(3 << 20)})
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/blob"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [{}]}).encode()
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [tag], "Layers": ["layer/layer.tar"]}]).encode()
    path.write_bytes(_tar({cfg_name: config, "layer/layer.tar": layer, "manifest.json": manifest}))


def _context(path: Path, rng: random.Random, with_run: bool) -> None:
    step = f"RUN echo {rng.getrandbits(64)} > /r" if with_run else "COPY blob /blob"
    path.mkdir()
    (path / "Dockerfile").write_text(f"FROM {IMAGE}\n{step}\n")
    (path / "blob").write_bytes(rng.randbytes(2 << 20))


def _burst(sock: Path, work: Path, rng: random.Random, n: int, ids: list[str]) -> list[subprocess.Popen]:
    """Starts the operations of one round at once (the docker CLI, as users run it)."""
    _archive(work / f"img{n}.tar", rng, f"crash/load:{n}")
    _context(work / f"ctx{n}", rng, with_run=n % 2 == 0)
    cmds = [["run", "-d", IMAGE, "sleep", "1000"], ["run", "-d", IMAGE, "sleep", "1000"],
            ["create", IMAGE, "sleep", "1000"], ["load", "-q", "-i", str(work / f"img{n}.tar")],
            ["build", "-q", "-t", f"crash/build:{n}", str(work / f"ctx{n}")]]
    if ids:
        cmds.append(["stop", "-t", "0", rng.choice(ids)])
        cmds.append(["rm", "-f", rng.choice(ids)])
    env = _docker_env(sock)
    return [subprocess.Popen(["docker", *c], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            for c in cmds]


def _runc_state(paths: Paths, cid: str) -> dict | None:
    if not (paths.runtime_state / "runc" / cid).exists():
        return None
    proc = subprocess.run(["runc", f"--root={paths.runtime_state / 'runc'}", "state", cid], capture_output=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ids_on_disk(paths: Paths) -> set[str]:
    ids: set[str] = set()
    for d in (paths.containers, paths.run_containers, paths.runtime_state / "runc"):
        if d.exists():
            ids.update(p.name for p in d.iterdir() if HEX64.match(p.name))
    return ids


def _processes_of(ids: set[str], paths: Paths) -> dict[int, str]:
    """pid → container id, for every conmon of this root and every process in one of these containers'
    cgroups (the container's init, `runc init` waiting to be started, its children)."""
    prefix = str(paths.run_containers) + "/"
    found: dict[int, str] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and b"-b" in argv:
            bundle = argv[argv.index(b"-b") + 1].decode()
            if bundle.startswith(prefix):
                found[int(pid)] = bundle[len(prefix):]
                continue
        for m in re.finditer(r"/nanovisor/([0-9a-f]{64})", cgroup):
            if m.group(1) in ids and _alive(int(pid)):
                found[int(pid)] = m.group(1)
    return found


def _check(cli, root: Path, paths: Paths, seen: set[str], serve_pid: int) -> list[str]:
    """Every invariant after a restart, as cli (the docker CLI on serve, or the embedded CLI) shows the
    containers; returns their ids (newest first)."""
    ps = cli("ps", "-a", "-q", "--no-trunc")
    assert ps.returncode == 0, ps.stderr
    images = cli("images")
    assert images.returncode == 0, images.stderr
    ids = ps.stdout.split()
    seen.update(ids)
    states = {}
    if ids:
        inspected = cli("inspect", *ids)
        assert inspected.returncode == 0, inspected.stderr
        states = {c["Id"]: c["State"] for c in json.loads(inspected.stdout)}
    alive_ids = set()
    for cid, st in states.items():
        rt = _runc_state(paths, cid)
        if st["Status"] in ("running", "paused"):
            assert rt is not None and rt["status"] == st["Status"], (cid, st, rt)
            assert _alive(st["Pid"]) and rt["pid"] == st["Pid"], (cid, st, rt)
            alive_ids.add(cid)
        else:
            assert st["Status"] in ("created", "exited", "dead"), (cid, st)
            assert rt is None, f"{cid} shown {st['Status']} but the runtime has it {rt and rt['status']}"
            assert not st["Running"] and st["Pid"] == 0, (cid, st)
    # no runtime container, conmon or container process for a container that is not running
    for cid in (p.name for p in (paths.runtime_state / "runc").iterdir()):
        assert cid in alive_ids, f"runtime state left for {cid} ({states.get(cid, {}).get('Status', 'unknown')})"
    orphans = {pid: cid for pid, cid in _processes_of(seen, paths).items() if cid not in alive_ids}
    assert not orphans, f"processes left for containers that do not run: {orphans}"
    # no mount under the root but the rootfs of a running container
    allowed = {str(paths.container_dir(cid) / "merged") for cid in alive_ids}
    allowed |= {str(paths.netns / cid) for cid in alive_ids} | {str(paths.netns)}  # netns/ is a private mount
    leaked = [m for m in mounts_under(root) + mounts_under(paths.run) if m not in allowed]
    assert not leaked, f"leaked mounts: {leaked}"
    # no half-unpacked layer, no scratch work of dead processes
    for layer in (root / "layers").iterdir():
        assert HEX64.match(layer.name), f"leftover in layers/: {layer.name}"
        assert (layer / "diff").is_dir() and (layer / "meta.json").exists(), f"half layer {layer.name}"
    scratch = [p.name for p in (root / "tmp").iterdir()
               if not p.name.startswith(f"{serve_pid}-") and not p.name.startswith(f"{os.getpid()}-")]
    assert not scratch, f"scratch work left in tmp/: {scratch}"
    return ids


def test_sigkill_of_serve_during_bursts_leaves_a_consistent_root(fresh_root, tmp_path):
    root = fresh_root
    run_cli(root, "nano", "build", "busybox", check=True, timeout=300)
    paths = Paths.for_root(root)
    sock = tmp_path / "d.sock"
    log = Path(os.environ.get("NANOVISOR_CRASH_LOG") or tmp_path / "serve.log")
    rng = random.Random(int(os.environ.get("NANOVISOR_CRASH_SEED", "11")))
    seen: set[str] = set()
    serve = _start_serve(root, sock, log)
    ids: list[str] = []
    try:
        for n in range(ROUNDS):
            clients = _burst(sock, tmp_path, rng, n, ids)
            time.sleep(rng.uniform(0.05, 1.5))
            seen.update(_ids_on_disk(paths))
            serve.send_signal(signal.SIGKILL)
            serve.wait()
            for c in clients:
                c.wait(60)
            seen.update(_ids_on_disk(paths))
            serve = _start_serve(root, sock, log)
            ids = _check(functools.partial(_docker, sock), root, paths, seen, serve.pid)
            if len(ids) > 12:  # keep the round's work small: remove the oldest
                assert _docker(sock, "rm", "-f", *ids[12:]).returncode == 0
                ids = ids[:12]
        # `docker system prune` removes the scratch work of a process that is gone, mounts in it included
        dead = root / "tmp" / "999999999-1"
        (dead / "build-context-x").mkdir(parents=True)
        (dead / "build-context-x" / "Dockerfile").write_text("FROM scratch\n")
        (dead / "mnt").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(dead / "mnt")], check=True)
        r = _docker(sock, "system", "prune", "-f")
        assert r.returncode == 0, r.stderr
        assert not dead.exists() and mounts_under(root / "tmp") == []
        # everything can be removed
        ids = _docker(sock, "ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            r = _docker(sock, "rm", "-f", *ids, timeout=300)
            assert r.returncode == 0, r.stderr
        refs = [line for line in _docker(sock, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
                if line.startswith("crash/")]
        if refs:
            r = _docker(sock, "rmi", "-f", *refs)
            assert r.returncode == 0, r.stderr
        r = _docker(sock, "image", "prune", "-f")
        assert r.returncode == 0, r.stderr
        assert _docker(sock, "ps", "-aq").stdout.split() == []
        assert _docker(sock, "images", "-q").stdout.split() == _docker(sock, "images", "-q", IMAGE).stdout.split()
        assert mounts_under(root) == [] and set(mounts_under(paths.run)) <= {str(paths.netns)}
        assert not _processes_of(seen, paths)
        assert not [p for p in (paths.runtime_state / "runc").iterdir()]
    finally:
        if serve.poll() is None:
            serve.terminate()
            serve.wait(30)


def test_embedded_cli_after_sigkill_of_serve_shows_a_consistent_root(fresh_root, tmp_path):
    """No serve comes back: the embedded CLI's first use of the root reconciles it."""
    root = fresh_root
    run_cli(root, "nano", "build", "busybox", check=True, timeout=300)
    paths = Paths.for_root(root)
    sock = tmp_path / "d.sock"
    log = tmp_path / "serve.log"
    rng = random.Random(int(os.environ.get("NANOVISOR_CRASH_SEED", "11")) + 1)
    seen: set[str] = set()
    ids: list[str] = []
    serve = _start_serve(root, sock, log)
    try:
        for n in range(4):
            if n:
                serve = _start_serve(root, sock, log)
            clients = _burst(sock, tmp_path, rng, n, ids)
            time.sleep(rng.uniform(0.3, 1.5))
            seen.update(_ids_on_disk(paths))
            serve.send_signal(signal.SIGKILL)
            serve.wait()
            for c in clients:
                c.wait(60)
            seen.update(_ids_on_disk(paths))
            ids = _check(functools.partial(run_cli, root), root, paths, seen, serve_pid=0)
        ids = run_cli(root, "ps", "-aq", "--no-trunc").stdout.split()
        assert not ids or run_cli(root, "rm", "-f", *ids, timeout=300).returncode == 0
        assert mounts_under(root) == [] and set(mounts_under(paths.run)) <= {str(paths.netns)}
        assert not _processes_of(seen, paths)
    finally:
        if serve.poll() is None:
            serve.terminate()
            serve.wait(30)
