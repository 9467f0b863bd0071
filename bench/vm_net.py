"""VM-container networking vs process-container networking, in one run, through the real engine CLI.

Both run busybox httpd on one user network, published on 127.0.0.1; a third (process) container is the client
for container-to-container traffic. Measured: wrk requests/s (small page) through the published port and
container->container by address, bulk MB/s of a 32 MiB file both ways (VM serves / VM downloads), and the time of
one `nslookup` by name in each container next to the time of one `/bin/true` (under TCG starting a process in the
guest costs tens of ms, which says nothing about the network; the relay hop itself is ~1 ms, see net.py). The VM's path is virtio-net (TCG here) on a tap tc-redirected to the
container's veth (runtime/vm/net.py); the process container's is the veth itself.

Runs inside its own network namespace with a tmp engine root and no route off the machine:
    unshare --net python bench/vm_net.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ["NANOVISOR_NET_OUTBOUND"] = "0"
os.environ["NANOVISOR_DNS_FORWARD"] = "0"

SERVE = ("mkdir -p /www && echo {page} > /www/index.html && dd if=/dev/zero of=/www/big bs=1M count=32 2>/dev/null"
         " && exec httpd -f -p 80 -h /www")
LOOKUPS = 50


def nv(root: Path, *args: str, check: bool = True, timeout: float = 300) -> str:
    r = subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), *args], capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode:
        raise SystemExit(f"nanovisor {' '.join(args)}: {r.stderr}")
    return r.stdout


def wrk(url: str, netns: str | None = None) -> float:
    cmd = ["wrk", "-t1", "-c8", "-d5s", url]
    if netns:
        cmd = ["nsenter", f"--net={netns}", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def download(url: str) -> float:
    """MB/s of one GET of the 32 MiB file, read by this process."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        n = 0
        while chunk := r.read(1 << 20):
            n += len(chunk)
    return n / (time.perf_counter() - t0) / 1e6


def timed(root: Path, *args: str) -> float:
    t0 = time.perf_counter()
    nv(root, *args)
    return time.perf_counter() - t0


def wait_http(url: str) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def main() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    root = Path(tempfile.mkdtemp(prefix="nv-bench-vmnet-"))
    try:
        nv(root, "nano", "build", "busybox")
        nv(root, "network", "create", "bench")
        ids = {}
        for name, iso, port in (("vmweb", "vm", 18501), ("procweb", "process", 18502)):
            ids[name] = nv(root, "run", "-d", "--name", name, "--network", "bench", f"--isolation={iso}",
                           "--tmpfs", "/www", "-p", f"127.0.0.1:{port}:80", "nano/busybox", "sh", "-c",
                           SERVE.format(page="x" * 64)).strip()
        nv(root, "run", "-d", "--name", "client", "--network", "bench", "nano/busybox", "sleep", "3600")
        info = {n: json.loads(nv(root, "inspect", n))[0]["NetworkSettings"] for n in ("vmweb", "procweb", "client")}
        ip = {n: s["Networks"]["bench"]["IPAddress"] for n, s in info.items()}
        client_ns = info["client"]["SandboxKey"]
        for port in (18501, 18502):
            wait_http(f"http://127.0.0.1:{port}/")

        rows = []

        def row(what: str, vm: float, proc: float, unit: str) -> None:
            rows.append(f"{what:<38}{vm:>10.1f} {proc:>10.1f}  {unit:<6} {vm / proc if proc else 0:6.2f}x")

        row("published port, wrk (req/s)", wrk("http://127.0.0.1:18501/"), wrk("http://127.0.0.1:18502/"), "req/s")
        row("container->container, wrk (req/s)", wrk(f"http://{ip['vmweb']}/", client_ns),
            wrk(f"http://{ip['procweb']}/", client_ns), "req/s")
        row("32 MiB from the container (-p)", download("http://127.0.0.1:18501/big"),
            download("http://127.0.0.1:18502/big"), "MB/s")
        get = ["sh", "-c", "wget -qO /dev/null http://client-peer/big"]
        # downloads made by the container itself, from the other kind of container (VM <- process, process <- VM)
        vm_gets = 33.5 / timed(root, "exec", "vmweb", *[a.replace("client-peer", "procweb") for a in get])
        proc_gets = 33.5 / timed(root, "exec", "procweb", *[a.replace("client-peer", "vmweb") for a in get])
        row("32 MiB downloaded by the container", vm_gets, proc_gets, "MB/s")
        def per_run_ms(name: str, cmd: str) -> float:
            loop = f"i=0; while [ $i -lt {LOOKUPS} ]; do {cmd}; i=$((i+1)); done"
            return timed(root, "exec", name, "sh", "-c", loop) / LOOKUPS * 1000

        for what, cmd in (("nslookup by name (one process each)", "nslookup client >/dev/null || exit 1"),
                          ("  baseline: /bin/true (one process)", "/bin/true")):
            row(what, per_run_ms("vmweb", cmd), per_run_ms("procweb", cmd), "ms")
        print(f"{'':<38}{'VM':>10} {'process':>10}  {'':<6} {'ratio':>6}")
        print("\n".join(rows))
        print("(downloads made *by* a container include one `exec` round trip; TCG: the guest CPU is emulated)")
    finally:
        ids = nv(root, "ps", "-aq", check=False).split()
        if ids:
            nv(root, "rm", "-f", *ids, check=False)
        nv(root, "network", "rm", "bench", check=False)
        from nanovisor.network.manager import NetworkManager
        from nanovisor.paths import Paths
        from nanovisor.store.db import Database

        paths = Paths.for_root(root)
        NetworkManager(paths, Database(paths.db)).teardown()
        shutil.rmtree(paths.run, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
