"""`docker update` (live limits in the cgroup, restart policy, validation) and `docker diff`, through the real
docker CLI and docker-py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import docker as dockerpy
import pytest


def _cgroup_file(pid: int, controller: str, name: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return (Path(f"/sys/fs/cgroup/{controller}{path}") / name).read_text().strip()
    raise AssertionError(f"no {controller} cgroup for {pid}")


def test_update_running_container_live_and_persisted(docker, image, name):
    r = docker("run", "-d", "--name", name, "--memory", "64m", image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        r = docker("update", "--memory", "128m", "--memory-swap", "256m", "--cpus", "0.5", "--pids-limit", "50",
                   "--restart", "on-failure:3", name)
        assert r.returncode == 0, r.stderr
        hc = json.loads(docker("inspect", name).stdout)[0]["HostConfig"]
        assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"]) == \
            (128 << 20, 256 << 20, 500_000_000, 50)
        assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        pid = int(docker("inspect", "-f", "{{.State.Pid}}", name).stdout)
        assert int(_cgroup_file(pid, "memory", "memory.limit_in_bytes")) == 128 << 20
        assert _cgroup_file(pid, "pids", "pids.max") == "50"
        assert _cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
        # the limits hold across a restart
        assert docker("restart", "-t", "0", name).returncode == 0
        pid = int(docker("inspect", "-f", "{{.State.Pid}}", name).stdout)
        assert int(_cgroup_file(pid, "memory", "memory.limit_in_bytes")) == 128 << 20
    finally:
        docker("rm", "-f", name)


def test_update_refuses_bad_values_with_docker_wording(client, image, name):
    c = client.containers.create(image, ["sleep", "600"], name=name, auto_remove=True)
    try:
        with pytest.raises(dockerpy.errors.APIError) as err:
            c.update(mem_limit="1k")
        assert err.value.status_code == 400 and "Minimum memory limit allowed is 6MB" in str(err.value)
        with pytest.raises(dockerpy.errors.APIError) as err:
            c.update(restart_policy={"Name": "always"})
        assert err.value.status_code == 400 and "AutoRemove is enabled" in str(err.value)
        with pytest.raises(dockerpy.errors.NotFound):
            client.api.update_container("no-such-container-x", mem_limit="64m")
    finally:
        c.remove(force=True)


def test_update_created_container_applies_at_start(client, image, name):
    c = client.containers.create(image, ["sleep", "600"], name=name)
    try:
        c.update(mem_limit="96m", memswap_limit="-1")
        c.start()
        c.reload()
        assert c.attrs["HostConfig"]["Memory"] == 96 << 20
        assert int(_cgroup_file(c.attrs["State"]["Pid"], "memory", "memory.limit_in_bytes")) == 96 << 20
    finally:
        c.remove(force=True)


def test_diff_lists_added_changed_deleted(docker, client, image, name):
    r = docker("run", "-d", "--name", name, image, "sh", "-c",
               "touch /tmp/new; mkdir -p /newdir/sub; rm /etc/passwd; echo x >> /etc/group; sleep 600")
    assert r.returncode == 0, r.stderr
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "/newdir/sub" not in docker("diff", name).stdout:
            time.sleep(0.2)
        out = docker("diff", name).stdout.splitlines()
        assert out == ["C /etc", "C /etc/group", "D /etc/passwd", "A /newdir", "A /newdir/sub", "C /tmp",
                       "A /tmp/new"], out
        changes = client.api.diff(name)
        assert {"Path": "/newdir", "Kind": 1} in changes and {"Path": "/etc/passwd", "Kind": 2} in changes
    finally:
        docker("rm", "-f", name)
