"""VM isolation costs, measured in one run (issue 3).

    python bench/vm_boot.py [--runs N]

1. boot-to-/init lower bound: QEMU microvm + the nano kernel + a trivial /init that stops the VM at once;
2. `run true` through nanovisor-vm-runtime under conmon (create, start, wait, delete) — ratio to (1), goal <= 1.3x;
   runc under the same conmon harness as a reference; and `nanovisor run --rm --isolation=vm nano/busybox true`
   when the engine can do it;
3. host memory per idle VM container beyond the guest RAM it touched (goal <= 30 MB);
4. exec latency into a running VM container (and into a runc one, for reference).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "runtime" / "vm"))

import harness as h  # noqa: E402

from nanovisor.runtime.vm import accel, guest, vmm  # noqa: E402


def median_time(fn, runs: int) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def boot_lower_bound() -> None:
    kernel = guest.kernel_path()
    acc = accel.describe()["accelerator"]
    cmdline = "console=ttyS0 quiet panic=-1 reboot=t pci=off nomodule"
    if acc == "tcg":  # the same boot flags the runtime uses
        cmdline += f" tsc_early_khz={accel.tsc_khz()} {vmm.CMDLINE_FAST}"
    subprocess.run([vmm.QEMU, "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                    "-M", "microvm,acpi=off,pcie=off,isa-serial=on,rtc=on" + vmm.MACHINE_EXTRA,
                    "-accel", "kvm" if acc == "kvm" else f"tcg,tb-size={vmm.TB_MIB}",
                    "-cpu", "host" if acc == "kvm" else "max", "-m", "256M",
                    "-kernel", str(kernel), "-initrd", str(guest.trivial_initramfs_path()),
                    "-append", cmdline, "-serial", "null"], check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Runner:
    def __init__(self, work: Path) -> None:
        self.work, self.n = work, 0

    def container(self, runtime: str, args: list[str]) -> h.Conmon:
        self.n += 1
        bundle = self.work / f"b{self.n}"
        if not bundle.exists():
            h.make_bundle(bundle, args)
        return h.create(runtime, self.work / f"root-{runtime}", f"c{self.n}", bundle, self.work)

    def bundles(self, n: int) -> None:
        """Write the next n `true` bundles now: copying busybox and its links is not the runtime's cost."""
        for i in range(self.n + 1, self.n + n + 1):
            h.make_bundle(self.work / f"b{i}", ["true"])

    def run_true(self, runtime: str) -> None:
        c = self.container(runtime, ["true"])
        c.start()
        assert c.wait() == 0
        c.rt("delete", c.cid)


def engine(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(root), *args],
                   check=True, capture_output=True, timeout=300)


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def tree(pid: int) -> list[int]:
    out = [pid]
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        out += tree(int(child))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--idle", type=int, default=3, help="idle VM containers for the memory figure")
    a = ap.parse_args()
    if not guest.artifacts():
        sys.exit("nano guest not built: python -m nanovisor.runtime.vm.guest build")
    d = accel.describe()
    print(f"accelerator: {d['accelerator']} ({d['reason']})")
    with tempfile.TemporaryDirectory(prefix="nv-vm-bench-") as tmp:
        r = Runner(Path(tmp))
        boot = median_time(boot_lower_bound, a.runs)
        r.bundles(a.runs)
        vm_true = median_time(lambda: r.run_true("vm"), a.runs)
        r.bundles(a.runs)
        runc_true = median_time(lambda: r.run_true("runc"), a.runs)
        print(f"boot-to-/init (trivial init, lower bound)  {boot * 1000:8.0f} ms")
        print(f"run true, nanovisor-vm under conmon          {vm_true * 1000:8.0f} ms   "
              f"ratio {vm_true / boot:.2f}x (goal <= 1.3x)")
        print(f"run true, runc under conmon (reference)      {runc_true * 1000:8.0f} ms")
        eroot = Path(tmp) / "engine"
        try:  # the issue's own figure, through the whole engine (embedded mode, a private data root)
            engine(eroot, "nano", "build", "busybox")
            eng = median_time(lambda: engine(eroot, "run", "--rm", "--isolation=vm", "nano/busybox", "true"), a.runs)
            eng_runc = median_time(lambda: engine(eroot, "run", "--rm", "nano/busybox", "true"), a.runs)
            print(f"nanovisor run --rm --isolation=vm ... true   {eng * 1000:8.0f} ms   ratio {eng / boot:.2f}x")
            print(f"nanovisor run --rm (runc) ... true           {eng_runc * 1000:8.0f} ms   "
                  f"(engine overhead both share: VM - runc = {(eng - eng_runc) * 1000:.0f} ms)")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError) as e:
            err = getattr(e, "stderr", b"") or b""
            print(f"nanovisor run --isolation=vm: not measured ({type(e).__name__}: {err.decode()[-200:]})")

        idle = [r.container("vm", ["sleep", "100000"]) for _ in range(a.idle)]
        for c in idle:
            c.start()
        time.sleep(3)
        beyond, guest_touched = [], []
        for c in idle:
            shim = c.state()["pid"]
            anon = sum(status_kb(p, "RssAnon") for p in tree(shim))  # shim + qemu + virtiofsd, private memory
            touched = sum(status_kb(p, "RssShmem") for p in tree(shim))  # guest RAM (memfd) actually touched
            beyond.append(anon / 1024)
            guest_touched.append(touched / 1024)
        print(f"idle VM container: guest RAM touched {statistics.mean(guest_touched):.1f} MB, host memory beyond it "
              f"{statistics.mean(beyond):.1f} MB (goal <= 30 MB; Kata: 130-320 MiB)")

        proc = Path(tmp) / "true.json"  # `exec --process`: how conmon (and so the engine) execs
        proc.write_text('{"args": ["true"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}')
        vm_exec = median_time(lambda: idle[0].rt("exec", "--process", str(proc), idle[0].cid), a.runs * 2)
        rc = r.container("runc", ["sleep", "100000"])
        rc.start()
        runc_exec = median_time(lambda: rc.rt("exec", "--process", str(proc), rc.cid), a.runs * 2)
        print(f"exec true, nanovisor-vm                      {vm_exec * 1000:8.1f} ms   "
              f"ratio to runc {vm_exec / runc_exec:.2f}x")
        print(f"exec true, runc (reference)                  {runc_exec * 1000:8.1f} ms")
        for c in [*idle, rc]:
            c.delete()


if __name__ == "__main__":
    main()
