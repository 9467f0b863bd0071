"""Nano images (issue 12), measured in one run on a scratch root, uncompressed sizes as `docker image
inspect` reports them:

- nano/python (`nano build --package python3`; `python3 -c 'import json, ssl, sqlite3'` must work): <= 50 MB
- nano/redis (`--package redis-server`): <= 25 MB
- a small http.server app FROM minbase + python3, slimmed by `nano slim --http-probe`: <= 1/10 of the
  original and still serving. minbase is bench/image_transport.py's debootstrap --variant=minbase bookworm
  rootfs (cached by `python3 bench/image_transport.py --prepare`, the one step that needs the network);
  python3 is installed into it by apt itself, from the local .deb cache (maintainer scripts run, as in a
  Dockerfile's `RUN apt-get install python3`). Without that rootfs the base is a fat nano build instead
  (every file kept), and the note says so.
- `nano build --package python3` from the warm .deb cache, in a fresh root each time: <= 10 s
- observation cost, fanotify vs ptrace: the same Python start-up (imports of json, ssl, sqlite3,
  http.server) plain, with a fanotify filesystem mark watching, and under `strace -f` (ptrace).

Usage: python3 bench/nano_sizes.py [--runs N]   (re-runs itself in a loopback-only network namespace)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

MINBASE = Path("/var/cache/nanovisor/bench/bookworm-minbase")
DEBS = Path("/var/cache/nanovisor/debs")
REQUIRED = ("apt base-files base-passwd bash bsdutils coreutils dash debconf debianutils diffutils dpkg e2fsprogs "
            "findutils grep gzip hostname init-system-helpers libc-bin libpam-modules libpam-modules-bin "
            "libpam-runtime login mawk mount ncurses-base ncurses-bin passwd perl-base sed sysvinit-utils tar "
            "tzdata util-linux").split()
APP = '''import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"hello": "nano", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
'''
APT_PYTHON = ("echo 'deb [trusted=yes] file:/debs ./' > /tmp/nano.list && "
              "apt-get -q -o Dir::Etc::sourcelist=/tmp/nano.list -o Dir::Etc::sourceparts=- "
              "-o Acquire::Languages=none update >/dev/null && "
              "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dir::Etc::sourcelist=/tmp/nano.list "
              "-o Dir::Etc::sourceparts=- install --no-install-recommends python3 >/dev/null && "
              "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/nano.list")
IMPORTS = "import json, ssl, sqlite3, http.server"
OPENS = "for _ in range(20000): open('/etc/passwd').close()"


def nv(root: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), *args], capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode:
        sys.exit(f"nanovisor {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def size(root: Path, ref: str) -> int:
    return json.loads(nv(root, "image", "inspect", ref).stdout)[0]["Size"]


def mb(n: float) -> str:
    return f"{n / 1e6:7.1f} MB"


def teardown(root: Path) -> None:
    ids = nv(root, "ps", "-aq", check=False).stdout.split()
    if ids:
        nv(root, "rm", "-f", *ids, check=False)
    code = ("import sys; from nanovisor.engine.engine import Engine; e = Engine(sys.argv[1]); "
            "e.network is not None and e.network.teardown(); print(e.paths.run)")
    run_dir = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True).stdout.strip()
    for d in (root, Path(run_dir) if run_dir else None):
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)


def build_time(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        root = Path(tempfile.mkdtemp(prefix="nv-bench-nano-"))
        try:
            t = time.monotonic()
            nv(root, "nano", "build", "--package", "python3", "-t", "nano/python")
            out.append(time.monotonic() - t)
        finally:
            teardown(root)
    return out


def base_image(root: Path) -> tuple[str, str]:
    """(ref of minbase + python3, how it was made)."""
    if (MINBASE / "complete").exists() and (MINBASE / "layer.tar").exists():
        with open(MINBASE / "layer.tar", "rb") as f:
            subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), "import", "-", "minbase"],
                           stdin=f, check=True, capture_output=True)
        nv(root, "run", "--name", "mkbase", "--network", "none", "-v", f"{DEBS}:/debs:ro", "minbase",
           "sh", "-c", APT_PYTHON)
        nv(root, "commit", "-c", 'CMD ["python3"]', "mkbase", "minbase-python3")
        nv(root, "rm", "mkbase")
        return "minbase-python3", "debootstrap --variant=minbase + apt-get install python3 (maintainer scripts run)"
    args = [a for p in ["python3", *REQUIRED] for a in ("--package", p)]
    nv(root, "nano", "build", *args, "--keep", "*", "-t", "minbase-python3")
    return "minbase-python3", ("NO debootstrap rootfs cached (run bench/image_transport.py --prepare): a fat "
                               "nano build of python3 + the required set with every file kept")


def serves(root: Path, image: str) -> bool:
    nv(root, "run", "-d", "--name", "probe", image)
    try:
        ip = nv(root, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                "probe").stdout.strip()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                return json.loads(urllib.request.urlopen(f"http://{ip}:8080/", timeout=2).read())["hello"] == "nano"
            except OSError:
                time.sleep(0.2)
        return False
    finally:
        nv(root, "rm", "-f", "probe", check=False)


def trace_cost(root: Path, runs: int, code: str) -> dict[str, float]:
    """Python start-up with imports in nano/python's tree (chroot on a scratch tmpfs), plain, watched by
    fanotify (a filesystem mark on that tmpfs), and under strace -f (ptrace, file syscalls only)."""
    from nanovisor.nano.fanotify import FileWatch

    layer = Path(json.loads(nv(root, "image", "inspect", "nano/python").stdout)[0]["GraphDriver"]["Data"]
                 ["UpperDir"])
    mnt = Path(tempfile.mkdtemp(prefix="nv-bench-trace-"))
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)
    try:
        subprocess.run(["cp", "-a", f"{layer}/.", str(mnt)], check=True)
        argv = ["chroot", str(mnt), "/usr/bin/python3", "-c", code]

        def once(cmd: list[str]) -> float:
            t = time.monotonic()
            subprocess.run(cmd, check=True, capture_output=True)
            return time.monotonic() - t

        strace = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=%file,mmap,execve", *argv]
        samples: dict[str, list[float]] = {"plain": [], "fanotify": [], "strace": []}
        seen: set[str] = set()
        once(argv)  # warm the page cache
        for _ in range(runs):  # interleaved, so a busy neighbour weighs on all three alike
            samples["plain"].append(once(argv))
            watch = FileWatch(str(mnt))
            try:
                samples["fanotify"].append(once(argv))
            finally:
                seen |= watch.stop()
            samples["strace"].append(once(strace))
        cost: dict[str, float] = {k: statistics.median(v) for k, v in samples.items()}
        cost["files_seen"] = len(seen)
        return cost
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if os.environ.get("NANO_BENCH_NETNS") != "1":
        os.environ["NANO_BENCH_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                              sys.executable, *sys.argv])
    root = Path(tempfile.mkdtemp(prefix="nv-bench-nano-"))
    try:
        print(f"nano build --package python3, warm .deb cache, fresh root, {args.runs} runs:", flush=True)
        times = build_time(args.runs)
        print(f"  median {statistics.median(times):5.2f} s  min {min(times):5.2f} s  (target <= 10 s)", flush=True)

        nv(root, "nano", "build", "--package", "python3", "-t", "nano/python")
        nv(root, "nano", "build", "--package", "redis-server", "-t", "nano/redis")
        ok = nv(root, "run", "--rm", "nano/python", "-c", "import json, ssl, sqlite3; print('ok')").stdout.strip()
        redis = nv(root, "run", "--rm", "nano/redis", "--version").stdout.split()[:3]
        base, how = base_image(root)
        ctx = Path(tempfile.mkdtemp(prefix="nv-bench-app-"))
        (ctx / "app.py").write_text(APP)
        (ctx / "Dockerfile").write_text(f'FROM {base}\nCOPY app.py /app/app.py\nEXPOSE 8080\n'
                                        'CMD ["python3", "/app/app.py"]\n')
        nv(root, "build", "-q", "-t", "app/web", str(ctx))
        shutil.rmtree(ctx)
        t = time.monotonic()
        report_path = root / "slim.json"
        nv(root, "nano", "slim", "app/web", "--http-probe", "8080", "-t", "app/web-slim", "--report",
           str(report_path))
        slim_s = time.monotonic() - t
        report = json.loads(report_path.read_text())
        sizes = {ref: size(root, ref) for ref in ("nano/python", "nano/redis", base, "app/web", "app/web-slim")}
        print("sizes (docker image inspect .Size):")
        print(f"  nano/python      {mb(sizes['nano/python'])}  (target <= 50 MB; stdlib imports: {ok})")
        print(f"  nano/redis       {mb(sizes['nano/redis'])}  (target <= 25 MB; {' '.join(redis)})")
        print(f"  {base:<16} {mb(sizes[base])}  ({how})")
        print(f"  app/web          {mb(sizes['app/web'])}  (http.server app FROM {base})")
        ratio = sizes["app/web"] / sizes["app/web-slim"]
        print(f"  app/web-slim     {mb(sizes['app/web-slim'])}  = 1/{ratio:.1f} of app/web (target <= 1/10), "
              f"serving: {serves(root, 'app/web-slim')}; slim took {slim_s:.1f} s, kept "
              f"{report['kept']['files']} files, removed {report['removed']['files']}")
        for code in (IMPORTS, OPENS):
            cost = trace_cost(root, max(args.runs, 9), code)
            print(f"observation cost, python3 -c \"{code}\" (median of {max(args.runs, 9)}, interleaved):")
            print(f"  plain {cost['plain'] * 1000:6.1f} ms   fanotify {cost['fanotify'] * 1000:6.1f} ms   "
                  f"strace/ptrace {cost['strace'] * 1000:6.1f} ms   ({cost['files_seen']} files seen by fanotify)")
    finally:
        teardown(root)


if __name__ == "__main__":
    main()
