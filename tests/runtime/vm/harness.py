"""Run an OCI bundle under conmon exactly as the engine does, with either runtime (runc or nanovisor-vm)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nanovisor.runtime.vm import runtime_binary

PY_RUNTIME = str(Path(sys.executable).parent / "nanovisor-vm-runtime")


def runtime_path(name: str) -> str:
    """"vm": what the engine runs (the C fast path when built); "vm-py": the Python console script
    (which serves create/boot and hands the steady-state commands to the fast path)."""
    if name == "vm":
        return runtime_binary() or PY_RUNTIME
    if name == "vm-py":
        return PY_RUNTIME
    return shutil.which("runc") or "runc"


def make_bundle(where: Path, args: list[str], **process) -> Path:
    """A busybox rootfs (busybox-static + applet symlinks) and a `runc spec` config.json."""
    rootfs = where / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True).stdout.split():
        if applet != "busybox":
            os.symlink("busybox", rootfs / "bin" / applet)
    for d in ("proc", "sys", "dev", "etc", "tmp", "root"):
        (rootfs / d).mkdir(exist_ok=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    subprocess.run(["runc", "spec"], cwd=where, check=True)
    spec = json.loads((where / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["process"].update(process)
    spec["root"]["readonly"] = False
    (where / "config.json").write_text(json.dumps(spec, indent=1))
    return where


def edit_spec(bundle: Path, fn) -> None:
    spec = json.loads((bundle / "config.json").read_text())
    fn(spec)
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))


@dataclass
class Conmon:
    runtime: str
    root: Path
    cid: str
    bundle: Path
    exit_dir: Path
    log: Path
    pid: int = 0

    def rt(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([runtime_path(self.runtime), f"--root={self.root}", *args], capture_output=True,
                              text=True, check=check, **kw)

    def start(self) -> None:
        self.rt("start", self.cid)

    def wait(self, timeout: float = 120) -> int:
        f = self.exit_dir / self.cid
        end = time.monotonic() + timeout
        while not f.exists() or not f.read_text().strip():
            if time.monotonic() > end:
                raise TimeoutError(f"{self.cid} did not exit")
            time.sleep(0.002)  # conmon writes the file as it exits: a coarse poll would add its period to bench/
        return int(f.read_text())

    def output(self, stream: str = "stdout") -> str:
        out = []
        for line in self.log.read_text().splitlines() if self.log.exists() else []:
            _ts, s, tag, text = (line.split(" ", 3) + [""])[:4]
            if s == stream:
                out.append(text + ("\n" if tag == "F" else ""))
        return "".join(out)

    def state(self) -> dict:
        return json.loads(self.rt("state", self.cid).stdout)

    def delete(self) -> None:
        self.rt("delete", "--force", self.cid, check=False)


def create(runtime: str, root: Path, cid: str, bundle: Path, work: Path, stdin: bool = False,
           tty: bool = False) -> Conmon:
    """conmon ... create; returns once the runtime's create succeeded (raises with its message otherwise)."""
    exit_dir = work / "exits"
    exit_dir.mkdir(exist_ok=True)
    log = work / f"{cid}.log"
    r, w = os.pipe()
    args = ["conmon", "--api-version", "1", "-c", cid, "-u", cid, "-r", runtime_path(runtime),
            "--runtime-arg", f"--root={root}", "-b", str(bundle), "-p", str(bundle / "pid"),
            "--exit-dir", str(exit_dir), "-l", f"k8s-file:{log}", "--full-attach",
            "--socket-dir-path", str(bundle), "--conmon-pidfile", str(work / f"{cid}.conmon.pid"),
            "--log-level", "error"]
    if stdin:
        args.append("-i")
    if tty:
        args.append("-t")
    p = subprocess.Popen(args, pass_fds=[w], env={**os.environ, "_OCI_SYNCPIPE": str(w)},
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(w)
    data = b""
    msg: dict = {}
    while chunk := os.read(r, 4096):  # conmon keeps the pipe open: stop at the first complete message
        data += chunk
        try:
            msg = json.loads(data.decode())
            break
        except ValueError:
            continue
    os.close(r)
    p.wait()
    pid = msg.get("data", msg.get("pid", -1))
    if pid is None or pid < 0:
        raise RuntimeError(msg.get("message") or p.stderr.read().decode())
    return Conmon(runtime, root, cid, bundle, exit_dir, log, pid)
