"""nanovisor vs dockerd vs podman, side by side in one run (issue 10), through the same docker CLI.

Each engine runs on its own socket and data root under --workdir (default /tmp/peers/run-*):
  nanovisor  `python -m nanovisor --root R serve --host unix://S`
  dockerd    `dockerd --data-root R --exec-root E --host unix://S --bridge=none` (its own containerd, its own
             pidfile; a user network with its own bridge name `pdock0` for the published-port figure)
  podman     `podman --root R --runroot RR --runtime runc --cgroup-manager cgroupfs system service unix://S`
and is stopped by PID at the end. The whole run happens inside a private network namespace (`unshare --net`,
loopback up), so every bridge, veth and netfilter rule the engines make dies with it and all traffic is on
loopback. No registry: the same images are loaded into every engine from local tars (nano/busybox saved from
nanovisor; the 172 MB debootstrap minbase image of bench/image_transport.py, built once and cached under
/var/cache/nanovisor/bench).

Figures (medians; ratios are nanovisor/peer, so < 1 means nanovisor is faster or smaller):
  run --rm / exec / ps latency; N concurrent API clients (count served); `rm -f` of N IDs in one CLI call;
  start N containers sequentially and 8-parallel (wall; start #1 vs #N); ps at N and BIG running; daemon
  RSS/PSS idle, at N and at BIG; monitor PSS per idle container; load/save MB/s of the 172 MB image (and
  `tar -x` of the same layer); cold and cached build (FROM busybox, RUN, COPY of 50 MB); published port
  req/s vs the host (wrk) and publishing right after a host server on that port stopped.

Usage (as root):
  python3 bench/compare_peers.py --install          # apt-get install docker.io podman (Debian), once
  python3 bench/compare_peers.py --quick            # small N, a few minutes
  python3 bench/compare_peers.py                    # N=100, BIG=500
  python3 bench/compare_peers.py --only load,build --engines nanovisor,dockerd
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import image_transport  # noqa: E402  (the cached debootstrap image)
from procmem import memory_of  # noqa: E402

PY = sys.executable
APT_PACKAGES = ["docker.io", "podman", "containernetworking-plugins", "uidmap", "slirp4netns", "fuse-overlayfs"]
BUSYBOX = "busybox:latest"
SECTIONS = ("latency", "concurrency", "start", "big", "load", "build", "port")
TIMEOUT = 600


# -- helpers ----------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(msg, flush=True)


def mem_of(pids: list[int]) -> tuple[float, float]:
    """(RSS, PSS) in MB summed over pids (from smaps_rollup)."""
    rss = pss = 0
    for pid in pids:
        try:
            r, p = memory_of(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        rss, pss = rss + r, pss + p
    return rss / 1024, pss / 1024


def pids_named(comm: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if open(f"/proc/{d}/comm").read().strip() == comm:
                    out.append(int(d))
            except OSError:
                pass
    return out


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
            except (OSError, ValueError):
                pass
    return out


def med_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000 if xs else float("nan")


class Engine:
    """One daemon, reached by the docker CLI through DOCKER_HOST."""

    name = ""
    monitor = ""  # comm of the per-container monitor process

    def __init__(self, work: Path) -> None:
        self.dir = work / self.name
        self.dir.mkdir(parents=True)
        self.sock = self.dir / "sock"
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=str(self.dir / "cli"),
                        DOCKER_BUILDKIT="0", DOCKER_CLI_HINTS="false")
        self.limits: list[str] = []
        self.refused = 0
        self.run_net = ["--network", "none"]
        self.port_net: list[str] = []

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv(), stdout=open(self.dir / "daemon.log", "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.dir / 'daemon.log'}")
            if self.sock.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not come up: see {self.dir / 'daemon.log'}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def daemon_pids(self) -> list[int]:
        return [self.proc.pid] if self.proc else []

    def docker(self, *args: str, check: bool = True, timeout: float = TIMEOUT,
               retry: bool = True) -> subprocess.CompletedProcess:
        """The docker CLI against this engine. A refused connection is retried (and counted) unless retry is
        False: only the concurrency figures measure refusals."""
        for _ in range(5):
            r = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
            if not (retry and r.returncode and "Cannot connect to the Docker daemon" in r.stderr):
                break
            self.refused += 1
            time.sleep(0.2)
        if check and r.returncode:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)[:200]}: {r.stderr.strip()[-1000:]}")
        return r

    def timed(self, *args: str) -> float:
        t = time.perf_counter()
        self.docker(*args)
        return time.perf_counter() - t

    def monitors(self) -> list[int]:
        """The monitor processes of this engine's containers (descendants of nothing we can name
        generically: matched by comm and by this engine's root in their command line)."""
        out = []
        for pid in pids_named(self.monitor):
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            except OSError:
                continue
            if str(self.dir).encode() in cmd:
                out.append(pid)
        return out

    def cleanup(self) -> None:
        ids = self.docker("ps", "-aq", check=False).stdout.split()
        for i in range(0, len(ids), 100):
            self.docker("rm", "-f", *ids[i:i + 100], check=False)


class Nanovisor(Engine):
    name = "nanovisor"
    monitor = "conmon"

    def argv(self) -> list[str]:
        return [PY, "-m", "nanovisor", "--root", str(self.dir / "root"), "serve", "--host", f"unix://{self.sock}"]

    def prepare(self) -> Path:
        """Builds nano/busybox and saves it: the busybox every engine runs."""
        subprocess.run([PY, "-m", "nanovisor", "--root", str(self.dir / "root"), "nano", "build", "busybox"],
                       check=True, capture_output=True, timeout=TIMEOUT)
        self.docker("tag", "nano/busybox", BUSYBOX)
        tar = self.dir.parent / "busybox.tar"
        self.docker("save", "-o", str(tar), BUSYBOX)
        return tar


class Dockerd(Engine):
    name = "dockerd"
    monitor = "containerd-shim"  # comm is truncated to 15 characters

    def argv(self) -> list[str]:
        return ["dockerd", "--data-root", str(self.dir / "root"), "--exec-root", str(self.dir / "exec"),
                "--pidfile", str(self.dir / "dockerd.pid"), "--host", f"unix://{self.sock}", "--bridge=none",
                "--storage-driver", "overlay2", "--exec-opt", "native.cgroupdriver=cgroupfs",
                "--cgroup-parent", "peers-dockerd", "--log-level", "warn"]

    def daemon_pids(self) -> list[int]:
        """dockerd and the containerd it started."""
        if not self.proc:
            return []
        return [self.proc.pid, *[p for p in children(self.proc.pid)
                                 if open(f"/proc/{p}/comm").read().strip() == "containerd"]]

    def start(self) -> None:
        super().start()
        # dockerd has no bridge of its own (--bridge=none): published ports get a network with its own bridge
        self.docker("network", "create", "-o", "com.docker.network.bridge.name=pdock0", "--subnet",
                    "10.231.0.0/24", "benchnet")
        self.port_net = ["--network", "benchnet"]


class Podman(Engine):
    name = "podman"
    monitor = "conmon"

    def base(self) -> list[str]:
        return ["podman", "--root", str(self.dir / "root"), "--runroot", str(self.dir / "run"),
                "--tmpdir", str(self.dir / "tmp"), "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", "--storage-driver", "overlay",
                "--network-config-dir", str(self.dir / "cni")]

    def argv(self) -> list[str]:
        return [*self.base(), "system", "service", "--time", "0", f"unix://{self.sock}"]

    def start(self) -> None:
        super().start()
        # podman asks for nofile/nproc 1048576 by default; this sandbox lacks CAP_SYS_RESOURCE and caps the hard
        # limit lower (dockerd and nanovisor containers inherit it): ask for that limit instead
        hard = {}  # the service's own (podman lowers nproc to 32768 when it cannot raise it)
        for line in open(f"/proc/{self.proc.pid}/limits"):
            for key, what in (("nofile", "Max open files"), ("nproc", "Max processes")):
                if line.startswith(what):
                    hard[key] = line.split()[-2]
        nofile, nproc = hard["nofile"], hard["nproc"]
        self.limits = ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
        self.run_net += self.limits


ENGINES: dict[str, type[Engine]] = {"nanovisor": Nanovisor, "dockerd": Dockerd, "podman": Podman}


# -- results ---------------------------------------------------------------------------------------

class Table:
    """figure -> engine -> value; printed with ratios nanovisor/peer."""

    def __init__(self, engines: list[str]) -> None:
        self.engines = engines
        self.rows: list[tuple[str, str, dict[str, object]]] = []

    def add(self, what: str, unit: str, values: dict[str, object]) -> None:
        self.rows.append((what, unit, values))
        log(self.format(what, unit, values))

    def format(self, what: str, unit: str, values: dict[str, object]) -> str:
        cells = []
        for e in self.engines:
            v = values.get(e)
            if isinstance(v, float):
                cells.append(f"{e} {v:9.2f}" if abs(v) < 10 else f"{e} {v:9.1f}")
            else:
                cells.append(f"{e} {str(v):>9}")
        s = f"{what:<44} {unit:<6} " + "  ".join(cells)
        nv = values.get("nanovisor")
        for peer in ("dockerd", "podman"):
            pv = values.get(peer)
            if isinstance(nv, float) and isinstance(pv, float) and pv:
                s += f"  nv/{peer} {nv / pv:5.2f}x"
        return s

    def dump(self) -> None:
        log("\n# summary (ratios nanovisor/peer: for ms/s/MB lower is better, for MB/s and req/s higher)")
        for what, unit, values in self.rows:
            log(self.format(what, unit, values))


# -- operations ------------------------------------------------------------------------------------

def concurrent_get(sock: Path, clients: int, path: str = "/containers/json") -> int:
    """clients connections opened at once, each GET path; how many got a 200."""
    barrier = threading.Barrier(clients)
    ok = [0] * clients

    def one(i: int) -> None:
        try:
            barrier.wait(30)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(60)
            s.connect(str(sock))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            s.close()
            ok[i] = int(data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200"))
        except (OSError, threading.BrokenBarrierError):
            pass

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(ok)


def create_many(e: Engine, n: int) -> list[str]:
    with ThreadPoolExecutor(8) as ex:
        return list(ex.map(lambda _: e.docker("create", *e.run_net, BUSYBOX, "sleep", "1000000").stdout.strip(),
                           range(n)))


def start_seq(e: Engine, ids: list[str]) -> list[float]:
    return [e.timed("start", i) for i in ids]


def start_par(e: Engine, ids: list[str]) -> float:
    t = time.perf_counter()
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: e.docker("start", i), ids))
    return time.perf_counter() - t


def rm_all(e: Engine, ids: list[str]) -> None:
    """Removes ids, retrying those a refused connection left behind (not what is measured here)."""
    for _ in range(5):
        chunks = [ids[i:i + 50] for i in range(0, len(ids), 50)]
        with ThreadPoolExecutor(4) as ex:
            list(ex.map(lambda c: e.docker("rm", "-f", *c, check=False), chunks))
        left = set(e.docker("ps", "-aq", "--no-trunc").stdout.split())
        ids = [i for i in ids if i in left or i[:12] in left]
        if not ids:
            return
    log(f"  {e.name}: {len(ids)} containers could not be removed")


def count_running(e: Engine, ids: list[str]) -> int:
    up = set(e.docker("ps", "-q", "--no-trunc").stdout.split())
    return sum(1 for i in ids if i in up)


def wrk(url: str, seconds: int) -> float:
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", url], capture_output=True, text=True,
                         check=True, timeout=seconds + 60).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def wait_http(url_port: int, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", url_port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {url_port}")


def sync() -> None:
    subprocess.run(["sync"], check=True)


# -- sections --------------------------------------------------------------------------------------

def sec_latency(engines: list[Engine], t: Table, o: argparse.Namespace) -> None:
    res: dict[str, dict[str, float]] = {"run": {}, "exec": {}, "ps": {}}
    for e in engines:
        e.docker("run", "--rm", *e.run_net, BUSYBOX, "true")  # warm
        res["run"][e.name] = med_ms([e.timed("run", "--rm", *e.run_net, BUSYBOX, "true") for _ in range(o.runs)])
        cid = e.docker("run", "-d", *e.run_net, BUSYBOX, "sleep", "1000000").stdout.strip()
        res["exec"][e.name] = med_ms([e.timed("exec", cid, "true") for _ in range(o.runs)])
        res["ps"][e.name] = med_ms([e.timed("ps") for _ in range(o.runs)])
        e.docker("rm", "-f", cid)
    t.add("docker run --rm true", "ms", res["run"])
    t.add("docker exec true", "ms", res["exec"])
    t.add("docker ps (1 running)", "ms", res["ps"])


def sec_concurrency(engines: list[Engine], t: Table, o: argparse.Namespace) -> None:
    served: dict[str, object] = {}
    removed: dict[str, object] = {}
    rm_time: dict[str, float] = {}
    for e in engines:
        served[e.name] = f"{concurrent_get(e.sock, o.n)}/{o.n}"
        ids = create_many(e, o.n)
        t0 = time.perf_counter()
        r = e.docker("rm", "-f", *ids, check=False, retry=False)
        rm_time[e.name] = (time.perf_counter() - t0) * 1000
        left = len(e.docker("ps", "-aq").stdout.split())
        removed[e.name] = f"{o.n - left}/{o.n}" + ("" if r.returncode == 0 else " (rc!=0)")
    t.add(f"{o.n} concurrent GET /containers/json served", "", served)
    t.add(f"rm -f of {o.n} created IDs in one call: removed", "", removed)
    t.add(f"rm -f of {o.n} created IDs in one call", "ms", rm_time)


def sec_start(engines: list[Engine], t: Table, o: argparse.Namespace) -> None:
    figs: dict[str, dict[str, object]] = {k: {} for k in (
        "seq", "first", "last", "par", "ps", "rss", "pss", "mon", "rss0", "pss0")}
    for e in engines:
        rss0, pss0 = mem_of(e.daemon_pids())
        figs["rss0"][e.name], figs["pss0"][e.name] = rss0, pss0
        ids = create_many(e, o.n)
        seq = start_seq(e, ids)
        k = max(1, min(5, o.n // 10))
        figs["seq"][e.name] = sum(seq)
        figs["first"][e.name] = statistics.median(seq[:k]) * 1000
        figs["last"][e.name] = statistics.median(seq[-k:]) * 1000
        time.sleep(2)
        figs["ps"][e.name] = med_ms([e.timed("ps") for _ in range(o.runs)])
        rss, pss = mem_of(e.daemon_pids())
        figs["rss"][e.name], figs["pss"][e.name] = rss, pss
        mons = e.monitors()
        figs["mon"][e.name] = (mem_of(mons)[1] / len(mons)) if mons else "n/a"
        rm_all(e, ids)
        ids = create_many(e, o.n)
        figs["par"][e.name] = start_par(e, ids)
        rm_all(e, ids)
    t.add("daemon RSS idle", "MB", figs["rss0"])
    t.add("daemon PSS idle", "MB", figs["pss0"])
    t.add(f"start {o.n} sequentially (wall)", "s", figs["seq"])
    t.add(f"  start #1..{max(1, min(5, o.n // 10))} (median)", "ms", figs["first"])
    t.add(f"  start #{o.n} (median of last)", "ms", figs["last"])
    t.add(f"start {o.n} 8-parallel (wall)", "s", figs["par"])
    t.add(f"docker ps ({o.n} running)", "ms", figs["ps"])
    t.add(f"daemon RSS ({o.n} running)", "MB", figs["rss"])
    t.add(f"daemon PSS ({o.n} running)", "MB", figs["pss"])
    t.add("monitor PSS per idle container", "MB", figs["mon"])


def sec_big(engines: list[Engine], t: Table, o: argparse.Namespace) -> None:
    figs: dict[str, dict[str, object]] = {k: {} for k in ("ps", "rss", "pss", "mon", "get")}
    for e in engines:
        ids = create_many(e, o.big)
        start_par(e, ids)
        time.sleep(2)
        running = count_running(e, ids)
        figs["ps"][e.name] = med_ms([e.timed("ps") for _ in range(o.runs)])
        if running != o.big:
            figs["ps"][e.name] = f"{running} up"
        rss, pss = mem_of(e.daemon_pids())
        figs["rss"][e.name], figs["pss"][e.name] = rss, pss
        mons = e.monitors()
        figs["mon"][e.name] = (mem_of(mons)[1] / len(mons)) if mons else "n/a"
        rm_all(e, ids)
    t.add(f"docker ps ({o.big} running)", "ms", figs["ps"])
    t.add(f"daemon RSS ({o.big} running)", "MB", figs["rss"])
    t.add(f"daemon PSS ({o.big} running)", "MB", figs["pss"])
    t.add(f"monitor PSS per idle container ({o.big})", "MB", figs["mon"])


def sec_load(engines: list[Engine], t: Table, o: argparse.Namespace) -> None:
    rfs = image_transport.rootfs()
    layer = image_transport.layer_tar(rfs)
    archive = image_transport.docker_archive(layer)
    mb = layer.stat().st_size / 1e6
    for f in (layer, archive):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    work = engines[0].dir.parent
    loads: dict[str, list[float]] = {e.name: [] for e in engines}
    saves: dict[str, list[float]] = {e.name: [] for e in engines}
    tars: list[float] = []
    for _ in range(o.load_runs):
        x = Path(tempfile.mkdtemp(prefix="tarx-", dir=work))
        sync()
        t0 = time.perf_counter()
        subprocess.run(["tar", "-xf", str(layer), "-C", str(x)], check=True)
        sync()
        tars.append(time.perf_counter() - t0)
        shutil.rmtree(x)
        for e in engines:
            sync()
            t0 = time.perf_counter()
            e.docker("load", "-q", "-i", str(archive))
            sync()
            loads[e.name].append(time.perf_counter() - t0)
            out = work / f"save-{e.name}.tar"
            sync()
            t0 = time.perf_counter()
            e.docker("save", "-o", str(out), image_transport.IMAGE)
            sync()
            saves[e.name].append(time.perf_counter() - t0)
            out.unlink()
            e.docker("rmi", image_transport.IMAGE)
    tar_mbs = mb / statistics.median(tars)
    t.add(f"tar -x of the layer ({mb:.0f} MB) + sync", "MB/s", {e.name: tar_mbs for e in engines})
    t.add("docker load + sync", "MB/s", {k: mb / statistics.median(v) for k, v in loads.items()})
    t.add("  load vs tar -x", "x", {k: tar_mbs and (mb / statistics.median(v)) / tar_mbs for k, v in loads.items()})
    t.add("docker save + sync", "MB/s", {k: mb / statistics.median(v) for k, v in saves.items()})


BUILD_DOCKERFILE = "FROM busybox\nRUN echo built > /built.txt\nCOPY big.bin /big.bin\n"


def sec_build(engines: list[Engine], t: Table, o: argparse.Namespace) -> None:
    ctx = engines[0].dir.parent / "buildctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(BUILD_DOCKERFILE)
    with open(ctx / "big.bin", "wb") as f:
        f.write(os.urandom(o.copy_mb << 20))
    cold: dict[str, float] = {}
    cached: dict[str, float] = {}
    for e in engines:
        args = ["build", "-q", "--network", "none", "-t", "bench/build", str(ctx)]
        c, w = [], []
        for _ in range(o.build_runs):
            c.append(e.timed(args[0], "--no-cache", *args[1:]))
            w.append(e.timed(*args))
        cold[e.name], cached[e.name] = med_ms(c), med_ms(w)
        e.docker("rmi", "-f", "bench/build", check=False)
    t.add(f"cold build (--no-cache, COPY {o.copy_mb} MB)", "ms", cold)
    t.add(f"cached build (COPY {o.copy_mb} MB)", "ms", cached)


def sec_port(engines: list[Engine], t: Table, o: argparse.Namespace) -> None:
    docroot = engines[0].dir.parent / "www"
    docroot.mkdir(exist_ok=True)
    (docroot / "index.html").write_text("x" * 1024)
    rates: dict[str, object] = {}
    right_after: dict[str, object] = {}
    port = 18400
    host = subprocess.Popen(["busybox", "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", str(docroot)])
    try:
        wait_http(port)
        host_rate = wrk(f"http://127.0.0.1:{port}/", o.wrk_seconds)
    finally:
        host.kill()
        host.wait()
    for i, e in enumerate(engines):
        cport = port + 1 + i  # a port nothing served on yet: the rate, not the rebinding, is measured here
        cmd = "echo " + "x" * 1024 + " > /tmp/index.html && exec httpd -f -p 80 -h /tmp"
        r = e.docker("run", "-d", *e.port_net, *e.limits, "-p", f"127.0.0.1:{cport}:80", BUSYBOX, "sh", "-c",
                     cmd, check=False)
        if r.returncode:
            rates[e.name] = "failed"
            log(f"  {e.name}: run -p failed: {r.stderr.strip()[:300]}")
            continue
        cid = r.stdout.strip()
        try:
            wait_http(cport)
            rates[e.name] = wrk(f"http://127.0.0.1:{cport}/", o.wrk_seconds)
        finally:
            e.docker("rm", "-f", cid, check=False)
    t.add("host busybox httpd (wrk)", "req/s", {e.name: host_rate for e in engines})
    t.add("published port (wrk)", "req/s", rates)
    t.add("  published vs host", "x", {k: v / host_rate for k, v in rates.items() if isinstance(v, float)})
    # for every engine: a host server serves traffic on a port and stops, then the engine publishes it at once
    for i, e in enumerate(engines):
        p = 18500 + i
        srv = subprocess.Popen(["busybox", "httpd", "-f", "-p", f"127.0.0.1:{p}", "-h", str(docroot)])
        try:
            wait_http(p)
            wrk(f"http://127.0.0.1:{p}/", 1)
        finally:
            srv.kill()
            srv.wait()
        r = e.docker("run", "-d", *e.port_net, *e.limits, "-p", f"127.0.0.1:{p}:80", BUSYBOX, "sleep", "100", check=False)
        right_after[e.name] = "ok" if r.returncode == 0 else "FAILED"
        if r.returncode == 0:
            e.docker("rm", "-f", r.stdout.strip(), check=False)
    t.add("publish right after a host server stopped", "", right_after)


RUNNERS: dict[str, Callable[[list[Engine], Table, argparse.Namespace], None]] = {
    "latency": sec_latency, "concurrency": sec_concurrency, "start": sec_start, "big": sec_big,
    "load": sec_load, "build": sec_build, "port": sec_port}


# -- main ------------------------------------------------------------------------------------------

def install() -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES], check=True, env=env)


def in_private_netns() -> None:
    """Re-runs this script in a new network namespace with only loopback up."""
    if os.environ.get("NV_PEERS_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    env = dict(os.environ, NV_PEERS_NETNS="1")
    os.execvpe("unshare", ["unshare", "--net", "--", PY, *sys.argv], env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--install", action="store_true", help="apt-get install docker.io podman first")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes")
    ap.add_argument("--engines", default="nanovisor,dockerd,podman")
    ap.add_argument("--only", default=",".join(SECTIONS), help="sections: " + ",".join(SECTIONS))
    ap.add_argument("--n", type=int, help="containers / clients / IDs (100)")
    ap.add_argument("--big", type=int, help="containers for the big ps/memory figure (500)")
    ap.add_argument("--runs", type=int, help="samples per latency figure (10)")
    ap.add_argument("--load-runs", type=int, help="load/save repetitions (3)")
    ap.add_argument("--build-runs", type=int, help="build repetitions (3)")
    ap.add_argument("--copy-mb", type=int, default=50)
    ap.add_argument("--wrk-seconds", type=int, help="wrk duration (5)")
    ap.add_argument("--workdir", default="/tmp/peers")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory")
    o = ap.parse_args()
    q = o.quick
    o.n = o.n or (10 if q else 100)
    o.big = o.big or (20 if q else 500)
    o.runs = o.runs or (3 if q else 10)
    o.load_runs = o.load_runs or (1 if q else 3)
    o.build_runs = o.build_runs or (1 if q else 3)
    o.wrk_seconds = o.wrk_seconds or (2 if q else 5)
    if os.geteuid() != 0:
        sys.exit("run as root")
    if o.install and os.environ.get("NV_PEERS_NETNS") != "1":
        install()
    if "load" in o.only:
        image_transport.docker_archive(image_transport.layer_tar(image_transport.rootfs()))  # needs network
    in_private_netns()

    names = [n for n in o.engines.split(",") if n]
    for n in names:
        exe = {"nanovisor": PY, "dockerd": "dockerd", "podman": "podman"}[n]
        if shutil.which(exe) is None:
            sys.exit(f"{exe} is not installed: run with --install")
    Path(o.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=o.workdir))
    os.chmod(work, 0o755)
    engines = [ENGINES[n](work) for n in names]
    table = Table(names)
    log(f"# compare_peers: engines {names}, N={o.n}, BIG={o.big}, runs={o.runs}, work {work}")
    nano = Nanovisor(work) if "nanovisor" not in names else None
    try:
        for e in engines:
            e.start()
            log(f"{e.name} up (pid {e.proc.pid}): server "
                f"{e.docker('version', '-f', '{{.Server.Version}}', check=False).stdout.strip()}")
        src = next((e for e in engines if isinstance(e, Nanovisor)), nano)
        if src is nano and nano is not None:
            nano.start()
        tar = src.prepare()
        for e in engines:
            if e is not src:
                e.docker("load", "-q", "-i", str(tar))
        for sec in SECTIONS:
            if sec in o.only.split(","):
                log(f"\n## {sec}")
                t0 = time.time()
                RUNNERS[sec](engines, table, o)
                log(f"   ({time.time() - t0:.0f} s)")
        table.dump()
        for e in engines:
            if e.refused:
                log(f"({e.name} refused {e.refused} CLI connections outside the concurrency figures; retried)")
        return 0
    finally:
        for e in [*engines, *([nano] if nano else [])]:
            try:
                e.cleanup()
            except Exception as ex:  # noqa: BLE001 - keep stopping the others
                log(f"cleanup of {e.name}: {ex}")
            e.stop()
        for e in engines:
            if isinstance(e, Podman):
                subprocess.run([*e.base(), "system", "reset", "-f"], capture_output=True, timeout=TIMEOUT)
        leftover = [line.split()[4] for line in open("/proc/self/mountinfo") if str(work) in line.split()[4]]
        for m in reversed(leftover):
            subprocess.run(["umount", "-l", m], capture_output=True)
        if not o.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
