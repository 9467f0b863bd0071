"""API server under concurrent clients: served count and latency percentiles at 1/10/100 clients, and a
new request's latency while 1,000 idle keep-alive connections are open.

Each client opens its own unix-socket connection per request (as a `docker` CLI process does) and sends
`GET /containers/json`; all clients start together (a barrier), so the listen backlog and the worker pool
see the whole burst. Starts its own `nanovisor serve` on a scratch root unless --socket is given.

    PYTHONPATH=src python3 bench/api_concurrency.py [--rounds 5] [--socket PATH] [--src OTHER/src]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REQUEST = b"GET /v1.44/containers/json HTTP/1.1\r\nHost: docker\r\n\r\n"


def _read_response(s: socket.socket) -> int:
    """Status of one response with a Content-Length body (what /containers/json answers)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            raise ConnectionError("closed before the response head")
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        data = s.recv(65536)
        if not data:
            raise ConnectionError("closed inside the body")
        body += data
    return status


def one_request(sock_path: str, timeout: float = 60) -> float:
    t0 = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(REQUEST)
        if _read_response(s) != 200:
            raise RuntimeError("not 200")
    return time.perf_counter() - t0


def burst(sock_path: str, clients: int) -> tuple[int, list[float], list[str]]:
    barrier = threading.Barrier(clients)
    lat: list[float] = []
    errs: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        barrier.wait()
        try:
            d = one_request(sock_path)
            with lock:
                lat.append(d)
        except Exception as e:
            with lock:
                errs.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(lat), lat, errs


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def proc_stats(pid: int) -> tuple[float, int]:
    """(RSS MB, thread count) of the serve process."""
    rss, threads = 0.0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


def idle_connections(sock_path: str, count: int, pid: int | None) -> None:
    held = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock_path)
            s.sendall(REQUEST)       # one request, then the connection stays open and idle (keep-alive)
            _read_response(s)
            held.append(s)
        time.sleep(0.5)
        lat = [one_request(sock_path, timeout=30) for _ in range(20)]
        extra = ""
        if pid:
            rss, threads = proc_stats(pid)
            extra = f"; serve RSS {rss:.1f} MB, {threads} threads"
        print(f"{count} idle keep-alive connections open: new request p50 {pct(lat, 50) * 1000:.1f} ms, "
              f"max {max(lat) * 1000:.1f} ms{extra}")
    finally:
        for s in held:
            s.close()


def _api(sock_path: str, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    import http.client

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(sock_path)

    c = Conn("docker", timeout=120)
    try:
        c.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def rm_many(sock_path: str, count: int, root: Path | None) -> None:
    """count running containers (--network none), then one `docker rm -f ID...`: removed count and time."""
    import json

    if root is not None and _api(sock_path, "GET", "/images/nano/busybox/json")[0] != 200:
        subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), "nano", "build", "busybox"],
                       check=True, capture_output=True)
    ids: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        body = json.dumps({"Image": "nano/busybox", "Cmd": ["sleep", "600"],
                           "HostConfig": {"NetworkMode": "none"}}).encode()
        status, data = _api(sock_path, "POST", "/containers/create", body)
        if status == 201:
            cid = json.loads(data)["Id"]
            _api(sock_path, "POST", f"/containers/{cid}/start")
            with lock:
                ids.append(cid)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=make) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    made = time.perf_counter() - t0
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=f"unix://{sock_path}", DOCKER_CLI_HINTS="false")
    t0 = time.perf_counter()
    r = subprocess.run(["docker", "rm", "-f", *ids], env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    removed = len(r.stdout.split())
    print(f"create+start {len(ids)}/{count} in parallel: {made:.2f} s; `docker rm -f` of {len(ids)} IDs in one "
          f"call: removed {removed}, {took:.2f} s")


def start_serve(src: str | None, workers: int | None) -> tuple[subprocess.Popen, str, Path]:
    tmp = Path(tempfile.mkdtemp(prefix="nv-bench-api-"))
    sock = str(tmp / "docker.sock")
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "nanovisor", "--root", str(tmp / "root"), "serve", "--host",
                             f"unix://{sock}", *(["--api-workers", str(workers)] if workers else [])],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            one_request(sock, timeout=5)
            return proc, sock, tmp
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("serve did not start; see " + str(tmp / "serve.log"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", help="an already running server's unix socket")
    ap.add_argument("--src", help="PYTHONPATH for the serve this script starts (compare another tree)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", default="1,10,100")
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--rm-ids", type=int, default=0, help="also: N running containers, one `docker rm -f`")
    ap.add_argument("--workers", type=int, help="serve --api-workers (default: serve's own)")
    args = ap.parse_args()
    proc = tmp = None
    pid = None
    if args.socket:
        sock = args.socket
    else:
        proc, sock, tmp = start_serve(args.src, args.workers)
        pid = proc.pid
    try:
        for n in (int(c) for c in args.clients.split(",")):
            served, lat, errs = 0, [], []
            for _ in range(args.rounds):
                s, lt, e = burst(sock, n)
                served, lat, errs = served + s, lat + lt, errs + e
            total = n * args.rounds
            print(f"{n:4d} concurrent clients x {args.rounds} rounds: served {served}/{total}; latency ms "
                  f"p50 {pct(lat, 50) * 1000:.1f} p90 {pct(lat, 90) * 1000:.1f} p99 {pct(lat, 99) * 1000:.1f} "
                  f"max {max(lat or [0]) * 1000:.1f}; mean {statistics.fmean(lat or [0]) * 1000:.1f}")
            for e in sorted(set(errs))[:3]:
                print(f"      error: {e}")
        if args.idle:
            idle_connections(sock, args.idle, pid)
        if args.rm_ids:
            rm_many(sock, args.rm_ids, tmp / "root" if tmp else None)
        if pid:
            rss, threads = proc_stats(pid)
            print(f"serve after the run: RSS {rss:.1f} MB, {threads} threads")
    finally:
        if proc is not None:
            remove_all(sock)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            teardown(tmp / "root", args.src)
            shutil.rmtree(tmp, ignore_errors=True)


_TEARDOWN = """
import sys
from nanovisor.engine.engine import Engine
engine = Engine(sys.argv[1])
if engine.network is not None:
    engine.network.teardown()
print(engine.paths.run)
"""


def remove_all(sock_path: str) -> None:
    """Every container of the scratch root, force-removed through the API (bounded parallelism)."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    try:
        status, data = _api(sock_path, "GET", "/containers/json?all=1")
    except OSError:
        return
    ids = [c["Id"] for c in json.loads(data)] if status == 200 else []
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda cid: _api(sock_path, "DELETE", f"/containers/{cid}?force=1"), ids))


def teardown(root: Path, src: str | None) -> None:
    """The root's kernel objects (netd, netns mount) and /run state, as the tests' teardown does."""
    env = dict(os.environ, **({"PYTHONPATH": src} if src else {}))
    done = subprocess.run([sys.executable, "-c", _TEARDOWN, str(root)], capture_output=True, text=True, env=env)
    run_dir = done.stdout.strip()
    if done.returncode == 0 and run_dir.startswith("/run/nanovisor/"):
        with open("/proc/self/mountinfo") as f:
            if not any(line.split()[4].startswith(run_dir) for line in f):
                shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
