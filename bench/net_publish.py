"""Published-port throughput: wrk against busybox httpd in a bridge-network namespace reached through the
nftables DNAT (-p 18300:80, via 127.0.0.1) vs. the same httpd on the host namespace, in one run; plus
container-to-container by name and the time to attach+detach 100 containers.

Runs inside its own network namespace (unshare) with a tmp engine root; prints ratios. Usage:
    unshare --net python bench/net_publish.py
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

from nanovisor.network import NetworkManager, links
from nanovisor.paths import Paths
from nanovisor.store.db import Database


def wrk(url: str, netns: str | None = None) -> float:
    cmd = ["wrk", "-t2", "-c32", "-d5s", url]
    if netns:
        cmd = ["nsenter", f"--net={netns}", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def httpd(docroot: Path, port: int, netns: str | None = None) -> subprocess.Popen:
    cmd = ["busybox", "httpd", "-f", "-p", str(port), "-h", str(docroot)]
    proc = subprocess.Popen(["nsenter", f"--net={netns}", *cmd] if netns else cmd)
    time.sleep(0.3)
    return proc


def main() -> None:
    links.lo_up()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "index.html").write_text("x" * 1024)
    paths = Paths.for_root(tmp / "root")
    paths.ensure()
    m = NetworkManager(paths, Database(paths.db), outbound=False, dns_forward=False)
    procs = []
    try:
        m.create({"Name": "bench"})
        ns_a = m.create_netns("a" * 64)
        m.attach("a" * 64, ns_a, {"NetworkMode": "bench", "PortBindings": {"80/tcp": [{"HostPort": "18300"}]}},
                 {}, "web", {}, name="web")
        ns_b = m.create_netns("b" * 64)
        m.attach("b" * 64, ns_b, {"NetworkMode": "bench"}, {}, "cli", {}, name="cli")
        procs += [httpd(tmp, 80, ns_a), httpd(tmp, 18400)]
        host = wrk("http://127.0.0.1:18400/")
        published = wrk("http://127.0.0.1:18300/")
        print(f"host httpd          {host:10.0f} req/s")
        print(f"published (-p, DNAT) {published:9.0f} req/s   ratio {published / host:.2f}x  (target >= 0.95)")
        ip = m.inspect("bench")["Containers"]["a" * 64]["IPv4Address"].split("/")[0]
        c2c = wrk(f"http://{ip}/", ns_b)
        print(f"container->container {c2c:9.0f} req/s   ratio {c2c / host:.2f}x")
        t0 = time.perf_counter()
        for i in range(100):
            cid = f"{i:064x}"
            ns = m.create_netns(cid)
            m.attach(cid, ns, {"NetworkMode": "bench"}, {}, "h", {}, name=f"c{i}")
        t1 = time.perf_counter()
        for i in range(100):
            cid = f"{i:064x}"
            m.detach(cid)
            m.delete_netns(cid)
        t2 = time.perf_counter()
        print(f"100 containers: attach {t1 - t0:.2f}s ({(t1 - t0) * 10:.1f} ms each), "
              f"detach {t2 - t1:.2f}s ({(t2 - t1) * 10:.1f} ms each)")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        m.teardown()


if __name__ == "__main__":
    main()
