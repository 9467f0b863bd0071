"""VM parity, through the real docker CLI against `nanovisor serve`, in both isolations: `--memory` is what the
container sees and enforces, an OOM kill sets `State.OOMKilled`, `docker update` changes the limit inside a running
container, and a restart policy restarts the container soon after it exits."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from nvtest import wait_for

ISOLATIONS = [pytest.param("process", id="process"), pytest.param("vm", id="vm", marks=pytest.mark.vm)]
MIB = 1 << 20
# the container's memory limit as the container reads it: cgroup v1 (runc on this host) or the guest's cgroup v2
LIMIT_INSIDE = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/c/memory.max"


@pytest.fixture(params=ISOLATIONS)
def iso(request):
    return request.param


def _state(docker, name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]["State"]


def _time(stamp: str) -> dt.datetime:
    """Docker's RFC 3339 timestamps (nanoseconds; Python parses microseconds)."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(f"{head}.{(frac or '0')[:6]:0<6}+00:00")


def test_memory_limit_seen_and_enforced(docker, image, name, iso):
    r = docker("run", "--name", name, f"--isolation={iso}", "--memory", "64m", image, "sh", "-c",
               f"{LIMIT_INSIDE}; dd if=/dev/zero of=/dev/null bs=40M count=1 2>/dev/null && echo fits; "
               "grep MemTotal /proc/meminfo")
    try:
        assert r.returncode == 0, r.stderr
        limit, fits, meminfo = r.stdout.splitlines()
        assert int(limit) == 64 * MIB and fits == "fits"
        if iso == "vm":  # the guest is the container's machine: `free` shows about the limit, not the host's RAM
            total = int(meminfo.split()[1]) * 1024
            assert 64 * MIB <= total <= 96 * MIB, meminfo
    finally:
        docker("rm", "-f", name)


def test_oom_kill_sets_oomkilled(docker, image, name, iso):
    r = docker("run", "--name", name, f"--isolation={iso}", "--memory", "32m", image, "tail", "/dev/zero")
    try:
        assert r.returncode == 137, r.stderr
        state = _state(docker, name)
        assert (state["OOMKilled"], state["ExitCode"]) == (True, 137)
        assert docker("start", "-a", name).returncode == 137  # and again after a restart (a fresh marker)
        assert _state(docker, name)["OOMKilled"] is True
    finally:
        docker("rm", "-f", name)
    r = docker("run", "--name", name, f"--isolation={iso}", "--memory", "32m", image, "sh", "-c", "exit 137")
    try:
        assert r.returncode == 137
        assert _state(docker, name)["OOMKilled"] is False  # 137 without an OOM kill is not one
    finally:
        docker("rm", "-f", name)


def test_update_memory_live(docker, image, name, iso):
    r = docker("run", "-d", "--name", name, f"--isolation={iso}", "--memory", "64m", "--memory-swap", "64m", image,
               "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        assert docker("exec", name, "dd", "if=/dev/zero", "of=/dev/null", "bs=40M", "count=1").returncode == 0
        r = docker("update", "--memory", "32m", "--memory-swap", "32m", "--pids-limit", "40", name)
        assert r.returncode == 0, r.stderr
        assert docker("exec", name, "sh", "-c", LIMIT_INSIDE).stdout.strip() == str(32 * MIB)
        # the new limit holds: what fitted a moment ago is now OOM-killed
        assert docker("exec", name, "dd", "if=/dev/zero", "of=/dev/null", "bs=40M", "count=1").returncode == 137
        assert docker("inspect", "-f", "{{.HostConfig.Memory}}", name).stdout.strip() == str(32 * MIB)
        usage = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", name).stdout.strip()
        assert usage.endswith("/ 32MiB"), usage  # the container's limit, not the VM's RAM
    finally:
        docker("rm", "-f", name)


@pytest.mark.vm
def test_update_vm_memory_above_boot_size_is_refused(docker, image, name):
    r = docker("run", "-d", "--name", name, "--isolation=vm", "--memory", "64m", image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        r = docker("update", "--memory", "512m", "--memory-swap", "1g", name)
        assert r.returncode != 0
        assert "cannot raise the memory of a running VM container above its boot size (64 MB): stop it first" \
            in r.stderr
        assert docker("inspect", "-f", "{{.HostConfig.Memory}}", name).stdout.strip() == str(64 * MIB)
        assert docker("exec", name, "cat", "/sys/fs/cgroup/c/memory.max").stdout.strip() == str(64 * MIB)
        r = docker("update", "--cpu-shares", "512", name)  # what a running VM can take still applies
        assert r.returncode == 0, r.stderr
        assert docker("exec", name, "cat", "/sys/fs/cgroup/c/cpu.weight").stdout.strip() == "20"
        docker("stop", "-t", "1", name)
        assert docker("update", "--memory", "512m", "--memory-swap", "1g", name).returncode == 0  # stopped: fine
    finally:
        docker("rm", "-f", name)


def test_restart_policy_restarts_soon_after_exit(docker, image, name, iso):
    r = docker("run", "-d", "--name", name, f"--isolation={iso}", "--restart", "on-failure:3", image, "sh", "-c",
               "[ -e /restarted ] && exec sleep 600; touch /restarted; exit 3")
    assert r.returncode == 0, r.stderr
    try:
        wait_for(lambda: docker("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", name).stdout.split()
                 == ["1", "running"], timeout=90)
        state = _state(docker, name)
        assert state["ExitCode"] == 0  # the new run's, as dockerd resets it at the start
        # FinishedAt: the first run's exit; StartedAt: the restarted run's. A correctness bound (the restart
        # follows the exit, not a poll minutes later), generous for a loaded machine and a VM's boot
        gap = (_time(state["StartedAt"]) - _time(state["FinishedAt"])).total_seconds()
        assert 0 < gap < 15, state
    finally:
        docker("rm", "-f", name)
