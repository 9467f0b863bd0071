"""Containers outlive the CLI and the daemon: kill `serve` with SIGKILL, start it again, lose nothing.
The embedded CLI and `serve` on one root see the same containers at the same time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nvtest import IMAGE, run_cli


def _start_serve(root: Path, sock: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "nanovisor", "--root", str(root), "serve", "--host",
                             f"unix://{sock}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not sock.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("serve did not come up")
        time.sleep(0.05)
    return proc


def _docker(sock: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(sock.parent / "dockercfg"))
    return subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def served(root, tmp_path):
    sock = tmp_path / "d.sock"
    procs = [_start_serve(root, sock)]

    class Served:
        socket = sock

        def kill9(self) -> None:
            procs[-1].send_signal(signal.SIGKILL)
            procs[-1].wait()
            sock.unlink(missing_ok=True)

        def restart(self) -> None:
            procs.append(_start_serve(root, sock))

    yield Served()
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(10)


@pytest.mark.parametrize("iso", ["process", pytest.param("vm", marks=pytest.mark.vm)])
def test_sigkill_of_serve_loses_no_container_exit_code_or_log_line(served, root, iso):
    sock = served.socket
    r = _docker(sock, "run", "-d", f"--isolation={iso}", "--name", f"durable-{iso}", IMAGE, "sh", "-c",
                "i=0; while [ $i -lt 30 ]; do echo line$i; i=$((i+1)); sleep 0.1; done; exit 5")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        served.kill9()
        # the container keeps running without any daemon, and the embedded CLI sees it
        assert run_cli(root, "inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
        time.sleep(4)  # it exits while no daemon runs
        served.restart()
        r = _docker(sock, "wait", cid)
        assert r.stdout.strip() == "5"
        state = json.loads(_docker(sock, "inspect", cid).stdout)[0]["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 5
        logs = _docker(sock, "logs", cid).stdout.splitlines()
        assert logs == [f"line{i}" for i in range(30)]
    finally:
        _docker(sock, "rm", "-f", cid)


def test_cli_and_daemon_share_one_root(served, root):
    sock = served.socket
    run_cli(root, "run", "-d", "--name", "shared-cli", IMAGE, "sleep", "1000")
    try:
        assert "shared-cli" in _docker(sock, "ps", "--format", "{{.Names}}").stdout.split()
        r = _docker(sock, "exec", "shared-cli", "echo", "from docker")
        assert r.stdout == "from docker\n"
        did = _docker(sock, "run", "-d", "--name", "shared-daemon", IMAGE, "sleep", "1000").stdout.strip()
        assert "shared-daemon" in run_cli(root, "ps", "--format", "{{.Names}}").stdout.split()
        assert run_cli(root, "stop", "-t", "0", "shared-daemon").returncode == 0
        assert _docker(sock, "inspect", "-f", "{{.State.Status}}", did).stdout.strip() == "exited"
    finally:
        run_cli(root, "rm", "-f", "shared-cli", "shared-daemon")


def test_restart_always_survives_daemon_restart(served, root):
    sock = served.socket
    cid = _docker(sock, "run", "-d", "--restart", "always", IMAGE, "sh", "-c", "sleep 1; exit 2").stdout.strip()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            count = int(_docker(sock, "inspect", "-f", "{{.RestartCount}}", cid).stdout.strip() or 0)
            if count >= 1:
                break
            time.sleep(0.3)
        assert count >= 1
        served.kill9()
        served.restart()
        deadline = time.monotonic() + 30
        before = count
        while time.monotonic() < deadline:
            count = int(_docker(sock, "inspect", "-f", "{{.RestartCount}}", cid).stdout.strip() or 0)
            if count > before:
                break
            time.sleep(0.3)
        assert count > before
    finally:
        _docker(sock, "rm", "-f", cid)


def test_restart_policy_and_healthcheck_run_with_nobody_looking(served, root):
    """serve watches every run it starts, restart-policy restarts included (no client read needed to notice an
    exit), and runs healthchecks again after a SIGKILL and restart of itself."""
    sock = served.socket
    since = str(int(time.time()))
    flappy = _docker(sock, "run", "-d", "--restart", "always", IMAGE, "sh", "-c", "sleep 1; exit 1").stdout.strip()
    checked = _docker(sock, "run", "-d", "--health-cmd", "test -f /tmp/ok", "--health-interval", "1s", IMAGE,
                      "sleep", "600").stdout.strip()
    try:
        time.sleep(8)  # nobody asks the daemon anything meanwhile
        starts = _docker(sock, "events", "--since", since, "--until", str(int(time.time())), "--filter",
                         f"container={flappy}", "--filter", "event=start", "--format", "{{.Action}}").stdout.split()
        assert len(starts) >= 3, starts
        served.kill9()
        served.restart()
        assert _docker(sock, "exec", checked, "touch", "/tmp/ok").returncode == 0
        deadline = time.monotonic() + 60
        status = ""
        while time.monotonic() < deadline and status != "healthy":
            status = _docker(sock, "inspect", "-f", "{{.State.Health.Status}}", checked).stdout.strip()
            time.sleep(0.5)
        assert status == "healthy"
    finally:
        _docker(sock, "rm", "-f", flappy, checked)


def test_embedded_healthcheck_command(root):
    name = "health-embedded"
    run_cli(root, "run", "-d", "--name", name, "--health-cmd", "test -f /tmp/ok", IMAGE, "sleep", "600", check=True)
    try:
        r = run_cli(root, "container", "healthcheck", name)
        assert (r.returncode, r.stdout.strip()) == (1, "starting")
        run_cli(root, "exec", name, "touch", "/tmp/ok", check=True)
        r = run_cli(root, "container", "healthcheck", name)
        assert (r.returncode, r.stdout.strip()) == (0, "healthy")
        health = json.loads(run_cli(root, "inspect", "-f", "{{json .State.Health}}", name).stdout)
        assert health["Status"] == "healthy" and len(health["Log"]) == 2
    finally:
        run_cli(root, "rm", "-f", name)
