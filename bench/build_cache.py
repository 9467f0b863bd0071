"""Build benchmark (issue 4): the same small Dockerfile (ARG/ENV/WORKDIR/COPY/RUN/CMD, two stages) built
cold (--no-cache) and then cached, on a scratch root with nano/busybox, in one run.

Measured two ways: the builder called in-process (what `nanovisor serve` pays per POST /build) and the
`nanovisor build` command line (adds Python start-up). Target: cached build <= 0.25 s.

Usage: python3 bench/build_cache.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCKERFILE = """\
FROM nano/busybox AS build
ARG VERSION=1.0
ENV APP_VERSION=$VERSION
WORKDIR /src
COPY . .
RUN cat app.conf > /src/built.txt && echo "$APP_VERSION" >> /src/built.txt
FROM nano/busybox
COPY --from=build /src/built.txt /app/built.txt
WORKDIR /app
EXPOSE 8080
CMD ["cat", "/app/built.txt"]
"""
CLI = ("import sys; from nanovisor.cli import main as m; m.VERBS.setdefault('build', ('build', 'cmd_build')); "
       "sys.exit(m.main(sys.argv[1:]))")


def median_ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:7.1f} ms  min {min(samples) * 1000:7.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    opts = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nv-bench-build-"))
    ctx = Path(tempfile.mkdtemp(prefix="nv-bench-ctx-"))
    try:
        subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), "nano", "build", "busybox"],
                       check=True, capture_output=True)
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        (ctx / "app.conf").write_text("setting=1\n" * 100)
        for i in range(20):
            (ctx / f"file{i}.txt").write_text(f"content {i}\n" * 50)

        from nanovisor.builder import build
        from nanovisor.engine import Engine

        engine = Engine(root)
        cold, cached, cli = [], [], []
        for _ in range(opts.runs):
            t = time.perf_counter()
            cold_id = build(engine, str(ctx), tags=["bench/build"], no_cache=True)
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            cached_id = build(engine, str(ctx), tags=["bench/build"])
            cached.append(time.perf_counter() - t)
            assert cached_id == cold_id, "a cached rebuild must give the same image"
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", CLI, "--root", str(root), "build", "-q", "-t", "bench/build",
                            str(ctx)], check=True, capture_output=True)
            cli.append(time.perf_counter() - t)
        print(f"cold build (--no-cache, in-process)   {median_ms(cold)}")
        print(f"cached build (in-process)             {median_ms(cached)}  "
              f"{statistics.median(cold) / statistics.median(cached):6.1f}x faster than cold")
        print(f"cached build (`nanovisor build` CLI)  {median_ms(cli)}")
        verdict = "OK" if statistics.median(cached) <= 0.25 else "MISSED"
        print(f"target cached <= 250 ms: {verdict}")
        return 0
    finally:
        subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), "rm", "-f",
                        *subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), "ps", "-aq"],
                                        capture_output=True, text=True).stdout.split()], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(ctx, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
