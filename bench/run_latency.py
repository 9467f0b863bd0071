"""Engine-core benchmark (issue 2), all measured in one run on this machine:

- `run --rm nano/busybox true`: docker CLI → `nanovisor serve`, embedded `nanovisor run`, and bare
  `runc run` of the same rootfs (the baseline); ratios to runc.
- `exec true` into a running container (docker CLI and embedded).
- `ps` with 100 running containers (docker CLI and the API call alone).
- host memory per idle container (the monitor's RSS and PSS).

Usage: python3 bench/run_latency.py [--runs N] [--containers N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procmem import memory_of  # bench/ is on sys.path: these run as scripts

PY = sys.executable


def nv(root: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "nanovisor", "--root", str(root), *args], capture_output=True, text=True,
                          check=True, **kw)


def timed(argv: list[str], runs: int, env: dict | None = None) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        out.append(time.perf_counter() - t)
    return out


def summary(name: str, samples: list[float], base: float | None = None) -> str:
    med = statistics.median(samples)
    ratio = f"  {med / base:5.2f}x runc" if base else ""
    return (f"{name:42s} median {med * 1000:7.1f} ms  min {min(samples) * 1000:7.1f}  "
            f"max {max(samples) * 1000:7.1f}{ratio}")


def log_writers(ids: list[str]) -> list[int]:
    """The nv-logger processes of these containers (json-file, the default driver)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"nv-logger") and any(i.encode() in b" ".join(argv) for i in ids):
            found.append(int(entry))
    return found


def api_get(sock: str, path: str) -> float:
    t = time.perf_counter()
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    while s.recv(65536):
        pass
    s.close()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--containers", type=int, default=100)
    opts = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="nv-bench-"))
    root = work / "root"
    serve = None
    try:
        nv(root, "nano", "build", "busybox")
        # baseline: bare runc on an unpacked copy of the same image
        bundle = work / "bundle"
        layer = json.loads(nv(root, "image", "inspect", "nano/busybox").stdout)[0]
        diff = layer["RootFS"]["Layers"][0].split(":")[1]
        shutil.copytree(root / "layers" / diff / "diff", bundle / "rootfs", symlinks=True)
        subprocess.run(["runc", "spec"], cwd=bundle, check=True)
        spec = json.loads((bundle / "config.json").read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["true"]
        (bundle / "config.json").write_text(json.dumps(spec))
        runc_root = work / "runc"
        runc = timed(["runc", "--root", str(runc_root), "run", "-b", str(bundle), "bench"], opts.runs)
        # the same, with the OCI config nanovisor generates (Docker's seccomp profile, caps, masks, cgroup)
        secured = work / "bundle-secured"
        secured.mkdir()
        (secured / "rootfs").symlink_to(bundle / "rootfs")
        from nanovisor.runtime.spec import SpecInput, build_spec, merge_config

        image_cfg = json.loads(nv(root, "image", "inspect", "nano/busybox").stdout)[0]["Config"]
        cfg = merge_config(image_cfg, {"Image": "nano/busybox", "Cmd": ["true"], "Hostname": "bench"})
        spec = build_spec(SpecInput(container_id="bench2", config=cfg, host_config={"NetworkMode": "none"},
                                    rootfs=str(bundle / "rootfs"), mounts=[], netns_path=None,
                                    cgroups_path="/nanovisor-bench/bench2"))
        (secured / "config.json").write_text(json.dumps(spec))
        runc_secured = timed(["runc", "--root", str(runc_root), "run", "-b", str(secured), "bench2"], opts.runs)

        embedded = timed([PY, "-m", "nanovisor", "--root", str(root), "run", "--rm", "nano/busybox", "true"],
                         opts.runs)
        sock = str(work / "docker.sock")
        serve = subprocess.Popen([PY, "-m", "nanovisor", "--root", str(root), "serve", "--host", f"unix://{sock}"],
                                 stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "w"))
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(work / "dockercfg"))
        docker = timed(["docker", "run", "--rm", "nano/busybox", "true"], opts.runs, env)

        base = statistics.median(runc)
        print(f"# nanovisor engine core benchmark ({opts.runs} runs each)")
        print(summary("runc run (baseline)", runc))
        print(summary("runc run, nanovisor's OCI config", runc_secured, base))
        print(summary("nanovisor run --rm (embedded)", embedded, base))
        print(summary("docker run --rm → nanovisor serve", docker, base))

        cid = nv(root, "run", "-d", "nano/busybox", "sleep", "100000").stdout.strip()
        print(summary("nanovisor exec true", timed([PY, "-m", "nanovisor", "--root", str(root), "exec", cid,
                                                    "true"], opts.runs)))
        print(summary("docker exec true", timed(["docker", "exec", cid, "true"], opts.runs, env)))

        ids = [cid] + [nv(root, "run", "-d", "nano/busybox", "sleep", "100000").stdout.strip()
                       for _ in range(opts.containers - 1)]
        print(summary(f"docker ps ({len(ids)} running)", timed(["docker", "ps"], opts.runs, env)))
        print(summary(f"nanovisor ps ({len(ids)} running)",
                      timed([PY, "-m", "nanovisor", "--root", str(root), "ps"], opts.runs)))
        print(summary(f"GET /containers/json ({len(ids)} running)",
                      [api_get(sock, "/containers/json") for _ in range(opts.runs)]))
        monitors = [int(json.loads(nv(root, "inspect", i).stdout)[0]["State"]["Pid"]) for i in ids[:10]]
        conmons = []
        for pid in monitors:
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            conmons.append(memory_of(ppid))
        rss = statistics.mean(r for r, _ in conmons)
        pss = statistics.mean(p for _, p in conmons)
        print(f"{'host memory per idle container (monitor)':42s} RSS {rss / 1024:.2f} MB  PSS {pss / 1024:.2f} MB"
              f"  (podman conmon 1.9/0.33, dockerd shim 13/2.8)")
        loggers = [memory_of(pid) for pid in log_writers(ids[:10])]
        if loggers:
            print(f"{'host memory per idle container (log writer)':42s} "
                  f"RSS {statistics.mean(r for r, _ in loggers) / 1024:.2f} MB  "
                  f"PSS {statistics.mean(p for _, p in loggers) / 1024:.2f} MB  (json-file's nv-logger)")
        srss, spss = memory_of(serve.pid)
        print(f"{'nanovisor serve process':42s} RSS {srss / 1024:.1f} MB  PSS {spss / 1024:.1f} MB")
        nv(root, "rm", "-f", *ids, timeout=600)
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(10)
        subprocess.run([PY, "-m", "nanovisor", "--root", str(root), "container", "prune", "-f"],
                       capture_output=True)
        for name in ("bench", "bench2"):
            subprocess.run(["runc", "--root", str(work / "runc"), "delete", "-f", name], capture_output=True)
        subprocess.run(["rmdir", *[f"/sys/fs/cgroup/{c}/nanovisor-bench/bench2" for c in os.listdir("/sys/fs/cgroup")],
                        *[f"/sys/fs/cgroup/{c}/nanovisor-bench" for c in os.listdir("/sys/fs/cgroup")]],
                       capture_output=True)
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            if str(work) in line.split()[4]:
                subprocess.run(["umount", "-l", line.split()[4]], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
