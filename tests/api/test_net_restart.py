"""Containers on a (dual-stack) user network keep talking, by address and by name, across `serve` restarts: in the same
network namespace, and when the next `serve` runs in another one (its bridge is new there, so restore must
replace the containers' interfaces whose peers stayed behind)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from apihelpers import ServeProcess, docker_cli, docker_cli_env
from nvtest import cleanup_root, run_cli

SUBNET, SUBNET6 = "10.123.90.0/24", "fd00:7e57:90::/64"
# a fresh network namespace with loopback up, then the server (as `unshare --net` by hand)
OTHER_NETNS = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "serve-in-netns"]


def test_containers_reach_each_other_after_serve_restarts(tmp_path):
    root = Path(tempfile.mkdtemp(prefix="nv-netrestart-"))
    sock = str(tmp_path / "docker.sock")
    docker = docker_cli(docker_cli_env(sock, tmp_path / "cfg"))

    def reach(src: str, dst: str, *flags: str) -> None:
        r = docker("exec", src, "ping", *flags, "-c", "1", "-W", "5", dst)
        assert r.returncode == 0, r.stdout + r.stderr

    server = None
    try:
        run_cli(root, "nano", "build", "busybox", check=True, timeout=600)
        server = ServeProcess(root, [f"unix://{sock}"], tmp_path / "serve1.log")
        server.wait_ready(sock=sock)
        assert docker("network", "create", "--ipv6", "--subnet", SUBNET, "--subnet", SUBNET6, "keep").returncode == 0
        for n in ("one", "two"):
            r = docker("run", "-d", "--name", n, "--network", "keep", "--network-alias", n + "-alias",
                       "nano/busybox", "sleep", "600")
            assert r.returncode == 0, r.stderr
        reach("one", "two")
        for i, prefix in enumerate(([], OTHER_NETNS), start=2):
            server.stop()
            server = ServeProcess(root, [f"unix://{sock}"], tmp_path / f"serve{i}.log", prefix=prefix)
            server.wait_ready(sock=sock)
            reach("one", "two")
            reach("two", "one-alias")
            reach("one", "two", "-6")
            reach("two", docker("inspect", "--format", "{{.NetworkSettings.Networks.keep.IPAddress}}",
                                "one").stdout.strip())
            assert "network restore" not in server.output()
        assert docker("rm", "-f", "one", "two").returncode == 0
        assert docker("network", "rm", "keep").returncode == 0
    finally:
        if server is not None:
            server.stop()
        cleanup_root(root)
