"""Time to create+start and to remove N containers attached to a user network (issue 5), in one run, against
the same N containers with --network none (the cost of everything but networking).

Usage: unshare --net python3 bench/net_churn.py [--count N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NANOVISOR_NET_OUTBOUND", "0")
os.environ.setdefault("NANOVISOR_DNS_FORWARD", "0")


def churn(engine, count: int, network: str) -> tuple[float, float]:
    ids = []
    t = time.perf_counter()
    for _ in range(count):
        cid = engine.container_create({"Image": "nano/busybox", "Cmd": ["sleep", "100000"],
                                       "HostConfig": {"NetworkMode": network}})["Id"]
        engine.container_start(cid)
        ids.append(cid)
    up = time.perf_counter() - t
    t = time.perf_counter()
    for cid in ids:
        engine.container_remove(cid, force=True)
    return up, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100)
    opts = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nv-churn-"))
    from nanovisor.engine import Engine

    engine = Engine(root)
    try:
        subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), "nano", "build", "busybox"],
                       check=True, capture_output=True)
        engine.network_create({"Name": "churn", "IPAM": {"Config": [{"Subnet": "10.201.0.0/16"}]}})
        none_up, none_down = churn(engine, opts.count, "none")
        net_up, net_down = churn(engine, opts.count, "churn")
        n = opts.count
        print(f"# {n} containers, created+started then removed (engine in-process)")
        print(f"--network none : up {none_up:6.2f} s ({none_up / n * 1000:5.1f} ms each)   "
              f"rm {none_down:6.2f} s ({none_down / n * 1000:5.1f} ms each)")
        print(f"user network   : up {net_up:6.2f} s ({net_up / n * 1000:5.1f} ms each)   "
              f"rm {net_down:6.2f} s ({net_down / n * 1000:5.1f} ms each)")
        print(f"networking adds {((net_up + net_down) - (none_up + none_down)) / n * 1000:.1f} ms per container")
    finally:
        engine.network_remove("churn")
        from nanovisor.network.manager import NetworkManager

        NetworkManager(engine.paths, engine.db).teardown()
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            mp = line.split()[4]
            if mp.startswith(str(root)) or mp.startswith(str(engine.paths.run)):
                subprocess.run(["umount", "-l", mp], capture_output=True)
        shutil.rmtree(engine.paths.run, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
