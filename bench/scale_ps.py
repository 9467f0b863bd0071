"""Per-request cost against the number of containers (issue 10): does `ps`, `inspect`, `create`, `start`
cost the same at 1, 100 and 500 containers, and does the daemon's memory stay flat?

Drives a real `nanovisor serve` on a unix socket through docker-py. Most containers are only created
(enough to load the store and the `ps -a` / `inspect` paths); `--running` of them run `sleep` so the
running-container paths (exit watching, `ps` without -a) are loaded too. Prints, at each count:
GET /containers/json (running only, and all=1), inspect by name and by id prefix, create, start, and the
serve process's RSS/PSS. Keeps all traffic on the unix socket.

Usage: PYTHONPATH=src python3 bench/scale_ps.py [--counts 1,100,500] [--running 20] [--runs 40]
With bridge networking, in a namespace of its own (loopback only; its bridges and rules go with it):
  unshare --net -- bash -c 'ip link set lo up && PYTHONPATH=src python3 bench/scale_ps.py --network bridge'
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procmem import memory_of  # bench/ is on sys.path: these run as scripts

PY = sys.executable
IMAGE = "nano/busybox"


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) the process has used, in ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def timed(fn, runs: int, pid: int) -> tuple[float, float]:
    """(median wall time of fn() in ms, the daemon's CPU ms per call): on a shared machine the second
    is the steadier measure of the daemon's own work."""
    samples = []
    cpu0 = cpu_ms(pid)
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000, (cpu_ms(pid) - cpu0) / runs


def _start_next(api, ids) -> None:
    api.start(next(ids))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="1,100,500")
    ap.add_argument("--running", type=int, default=20, help="containers kept running (sleep)")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--network", default="none", help="none (default) or bridge (run under unshare --net)")
    opts = ap.parse_args()
    counts = [int(n) for n in opts.counts.split(",")]

    import docker

    work = Path(tempfile.mkdtemp(prefix="nv-scale-"))
    root, sock = work / "root", work / "docker.sock"
    serve = None
    try:
        subprocess.run([PY, "-m", "nanovisor", "--root", str(root), "nano", "build", "busybox"], check=True,
                       capture_output=True)
        serve = subprocess.Popen([PY, "-m", "nanovisor", "--root", str(root), "serve", "--host",
                                  f"unix://{sock}"], stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "w"))
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.05)
        api = docker.APIClient(base_url=f"unix://{sock}", timeout=300)
        host_none = api.create_host_config(network_mode=opts.network)
        made: list[str] = []
        running = 0
        print(f"# nanovisor per-request cost vs container count ({opts.running} of them running); each cell: "
              f"median wall ms / serve CPU ms per request ({opts.runs} runs; create, start: 10)")
        print(f"{'containers':>10} {'ps':>13} {'ps -a':>13} {'inspect name':>13} {'inspect id':>13} "
              f"{'create':>13} {'start':>13} {'RSS MB':>7} {'PSS MB':>7}")
        for n in counts:
            while len(made) < n:
                want_run = running < opts.running
                cmd = ["sleep", "100000"] if want_run else ["true"]
                cid = api.create_container(IMAGE, cmd, host_config=host_none)["Id"]
                if want_run:
                    api.start(cid)
                    running += 1
                made.append(cid)
            time.sleep(0.5)  # let the daemon settle (watchers registered)
            last = made[-1]
            name = api.inspect_container(last)["Name"].lstrip("/")
            pid = serve.pid
            ps = timed(api.containers, opts.runs, pid)
            ps_all = timed(functools.partial(api.containers, all=True), opts.runs, pid)
            by_name = timed(functools.partial(api.inspect_container, name), opts.runs, pid)
            by_id = timed(functools.partial(api.inspect_container, last[:12]), opts.runs, pid)
            fresh: list[str] = []

            def create_one(out: list[str] = fresh) -> None:
                out.append(api.create_container(IMAGE, ["true"], host_config=host_none)["Id"])

            create = timed(create_one, 10, pid)
            start = timed(functools.partial(_start_next, api, iter(fresh)), 10, pid)
            for cid in fresh:
                api.wait(cid)
                api.remove_container(cid)
            rss, pss = memory_of(serve.pid)
            cells = " ".join(f"{w:6.1f}/{c:<6.1f}" for w, c in (ps, ps_all, by_name, by_id, create, start))
            print(f"{n:>10} {cells} {rss / 1024:7.1f} {pss / 1024:7.1f}", flush=True)
        subprocess.run([PY, "-m", "nanovisor", "--root", str(root), "rm", "-f", *made], capture_output=True,
                       timeout=900)
    finally:
        if serve is not None:
            serve.terminate()
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
        ids = subprocess.run([PY, "-m", "nanovisor", "--root", str(root), "ps", "-aq", "--no-trunc"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([PY, "-m", "nanovisor", "--root", str(root), "rm", "-f", *ids], capture_output=True)
        subprocess.run([PY, "-c", "import sys\nfrom nanovisor.engine import Engine\ne = Engine(sys.argv[1])\n"
                        "e.network is None or e.network.teardown()", str(root)], capture_output=True)
        from nanovisor.paths import Paths

        run_dir = Paths.for_root(root).run
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            if str(work) in line.split()[4] or str(run_dir) in line.split()[4]:
                subprocess.run(["umount", "-l", line.split()[4]], capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        if os.environ.get("NV_SCALE_KEEP_LOG"):
            print((work / "serve.log").read_text())
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
