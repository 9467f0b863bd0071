"""The nano guest: a small kernel built from Debian's linux-source and an initramfs holding the agent.

Both are cached under GUEST_CACHE keyed on a hash of their inputs (kernel config + source version; agent
sources), so a change rebuilds and CI on the same machine reuses the build.

    python -m nanovisor.runtime.vm.guest build     # build whatever is missing (kernel: ~10 min on 2 cores)
    python -m nanovisor.runtime.vm.guest paths     # print the artifact paths (exit 1 when missing)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from nanovisor.runtime.vm import protocol

GUEST_CACHE = Path(os.environ.get("NANOVISOR_GUEST_CACHE", "/var/cache/nanovisor/guest"))
KERNEL_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")


def guest_src() -> Path:
    """guest/ at the repository root (the package is installed editable from the checkout)."""
    env = os.environ.get("NANOVISOR_GUEST_SRC")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[4] / "guest"


def _digest(*parts: bytes) -> str:
    import hashlib  # here, not at the top: `create` reaches this module and rarely needs a digest

    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


DPKG_STATUS = Path("/var/lib/dpkg/status")


def _kernel_source_version() -> str:
    """linux-source's package version. Asking dpkg costs ~10 ms on every `create`, so the answer is memoized
    next to the artifacts, keyed on dpkg's status file (rewritten by every install/upgrade)."""
    try:
        stamp = f"{DPKG_STATUS.stat().st_mtime_ns}"
    except OSError:
        stamp = ""
    memo = GUEST_CACHE / "linux-source.version"
    try:
        seen, _, version = memo.read_text().partition(" ")
        if stamp and seen == stamp and version:
            return version
    except OSError:
        pass
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "linux-source-6.1"],
                             capture_output=True, text=True, check=True)
        version = out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        st = KERNEL_TARBALL.stat()
        return f"{st.st_size}-{int(st.st_mtime)}"
    if stamp and version:
        try:  # best effort (read-only cache dir: just ask dpkg next time); rename keeps readers whole
            tmp = memo.with_name(f"{memo.name}.{os.getpid()}")
            tmp.write_text(f"{stamp} {version}")
            tmp.rename(memo)
        except OSError:
            pass
    return version


def kernel_key() -> str:
    return _digest((guest_src() / "nano.config").read_bytes(), _kernel_source_version().encode())


def initramfs_key() -> str:
    agent = guest_src() / "agent"
    return _digest(*(p.read_bytes() for p in sorted(agent.glob("*.[ch]"))), protocol.c_header().encode())


def _python() -> str:
    """The interpreter the fast path hands over to (realpath: `python` and `python3` name the same one)."""
    return os.path.realpath(sys.executable)


def _python_path() -> str:
    """What the fast path puts on sys.path for the Python runtime it execs with `-S` (no site: the .pth
    files of this environment cost ~25 ms per start): the directory holding the nanovisor package, then
    site-packages (pyroute2, for containers with a network)."""
    import sysconfig

    import nanovisor

    pkg = str(Path(nanovisor.__file__).resolve().parents[1])
    return ":".join(dict.fromkeys([pkg, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))


def fastpath_key() -> str:
    host = guest_src() / "host"
    return _digest(*(p.read_bytes() for p in sorted(host.glob("*.c"))),
                   protocol.c_header().encode(), _python().encode(),
                   _python_path().encode())


def fastpath_path() -> Path:
    """The C front-end of nanovisor-vm-runtime: it alone serves start/state/kill/delete/exec (see fastpath.c)."""
    return GUEST_CACHE / f"host-{fastpath_key()}" / "nanovisor-vm-runtime"


def host_tool(name: str) -> Path:
    """A built host tool: "nanovisor-vm-runtime" (the C fast path), "nv-shim" (the C steady-state shim the Python
    shim execs into after boot) or "nv-logger" (the json-file log writer, runtime/logfiles.py). The fast path says where it lives when it hands a command over
    (NANOVISOR_VM_HOST_DIR), which spares hashing the sources; otherwise they are built on first use (gcc, ~1 s)."""
    here = os.environ.get("NANOVISOR_VM_HOST_DIR")
    if here and os.path.exists(os.path.join(here, name)):
        return Path(here) / name
    return build_fastpath().with_name(name)


def build_fastpath() -> Path:
    out = fastpath_path()
    if out.exists():
        return out
    tmp = out.parent.with_name(out.parent.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _compile(guest_src() / "host" / "fastpath.c", tmp / out.name, f'-DNV_PYTHON="{_python()}"',
             f'-DNV_PYPATH="{_python_path()}"')
    _compile(guest_src() / "host" / "shim.c", tmp / "nv-shim")
    _compile(guest_src() / "host" / "logger.c", tmp / "nv-logger")  # not VM-only: every json-file log
    shutil.rmtree(out.parent, ignore_errors=True)
    tmp.rename(out.parent)
    return out


def kernel_path() -> Path:
    return GUEST_CACHE / f"kernel-{kernel_key()}" / "vmlinux"


def initramfs_path() -> Path:
    return GUEST_CACHE / f"initramfs-{initramfs_key()}.cpio"


def trivial_initramfs_path() -> Path:
    return GUEST_CACHE / f"trivial-{initramfs_key()}.cpio"


def artifacts() -> tuple[Path, Path] | None:
    """(vmlinux, initramfs) when both are built, else None."""
    k, i = kernel_path(), initramfs_path()
    return (k, i) if k.exists() and i.exists() else None


def build_kernel(jobs: int = 2, log=sys.stderr) -> Path:
    """Extract linux-source, tinyconfig + nano.config, build vmlinux (PVH-bootable ELF)."""
    out = kernel_path()
    if out.exists():
        return out
    build = GUEST_CACHE / f"build-{out.parent.name}.{os.getpid()}"  # own dir: other checkouts may build at once
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    print(f"nano guest: extracting {KERNEL_TARBALL}", file=log, flush=True)
    if not KERNEL_TARBALL.exists():
        raise FileNotFoundError(f"{KERNEL_TARBALL} missing: apt-get install linux-source-6.1 (scripts/install.sh)")
    subprocess.run(["tar", "-xf", str(KERNEL_TARBALL), "-C", str(build)], check=True)
    src = next(build.iterdir())
    configure(src)
    print(f"nano guest: building vmlinux with -j{jobs} (about 10 minutes on 2 cores)", file=log, flush=True)
    _make(src, f"-j{jobs}", "vmlinux")
    tmp = out.parent.with_name(out.parent.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(src / "vmlinux", tmp / "vmlinux")
    shutil.copy2(src / ".config", tmp / "config")
    tmp.rename(out.parent)
    shutil.rmtree(build, ignore_errors=True)
    return out


def _make(src: Path, *args: str) -> None:
    subprocess.run(["nice", "-n", "10", "make", "-s", *args], cwd=src, check=True, stdout=subprocess.DEVNULL)


def configure(src: Path) -> None:
    """tinyconfig, then nano.config merged on top; fail if Kconfig dropped anything we asked for."""
    frag = guest_src() / "nano.config"
    _make(src, "tinyconfig")
    subprocess.run(["scripts/kconfig/merge_config.sh", "-m", ".config", str(frag)], cwd=src, check=True,
                   stdout=subprocess.DEVNULL)
    _make(src, "olddefconfig")
    _check_config(src / ".config", frag)


def _check_config(config: Path, frag: Path) -> None:
    """Fail loudly when Kconfig dropped an option we asked for (an unmet dependency)."""
    have = set(config.read_text().splitlines())
    missing = []
    for line in frag.read_text().splitlines():
        if not line.startswith("CONFIG_"):
            continue
        key, val = line.split("=", 1)
        ok = f"# {key} is not set" in have or not any(h.startswith(key + "=") for h in have) \
            if val == "n" else line in have
        if not ok:
            missing.append(line)
    if missing:
        raise RuntimeError(f"kernel config lost options (unmet dependencies): {missing}")


def _cpio_newc(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    """A newc cpio archive from (name, mode, data, rdev) — enough for an initramfs, no cpio(1) needed."""
    out = bytearray()
    ino = 1
    for name, mode, data, rdev in [*entries, ("TRAILER!!!", 0, b"", 0)]:
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, os.major(rdev), os.minor(rdev), len(nb), 0))
        out += hdr.encode() + nb
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
        ino += 1
    return bytes(out)


def _compile(src: Path, dst: Path, *extra: str) -> None:
    """gcc -static, with the protocol.h generated from protocol.py (the one definition of the wire format)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nv-gen-") as gen:
        Path(gen, "protocol.h").write_text(protocol.c_header())
        subprocess.run(["gcc", "-static", "-Os", "-s", "-Wall", "-I", gen,
                        "-o", str(dst), *extra, str(src)], check=True, cwd=src.parent)


def build_initramfs() -> Path:
    """/init = the agent; plus the trivial init used by bench/ as the boot lower bound."""
    out = initramfs_path()
    if out.exists() and trivial_initramfs_path().exists():
        return out
    GUEST_CACHE.mkdir(parents=True, exist_ok=True)
    agent = guest_src() / "agent"
    for src, dst in ((agent / "agent.c", out), (agent / "trivial.c", trivial_initramfs_path())):
        binary = dst.with_suffix(".bin")
        _compile(src, binary)
        base = [("dev", 0o40755, b"", 0), ("dev/console", 0o20600, b"", os.makedev(5, 1)),
                ("proc", 0o40755, b"", 0), ("sys", 0o40755, b"", 0), ("c", 0o40755, b"", 0),
                ("init", 0o100755, binary.read_bytes(), 0)]
        tmp = dst.with_suffix(".tmp")
        tmp.write_bytes(_cpio_newc(base))
        tmp.rename(dst)
        binary.unlink()
    return out


PRUNE_AGE_S = 24 * 3600


def prune() -> None:
    """Drop stale initramfs/host-tool builds (cheap to rebuild); kernels are kept, they take minutes. Only old
    ones: other checkouts on this machine (worktrees, CI jobs) share the cache and use their own builds now."""
    import time

    keep = {initramfs_path().name, trivial_initramfs_path().name, fastpath_path().parent.name}
    for p in GUEST_CACHE.glob("*"):
        if p.name.startswith(("initramfs-", "trivial-", "host-")) and p.name not in keep:
            try:
                if time.time() - p.stat().st_mtime < PRUNE_AGE_S:
                    continue
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            except OSError:  # another build removed it first
                pass


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "build"
    if cmd == "build":
        build_initramfs()
        build_fastpath()
        prune()
        k = build_kernel(jobs=int(os.environ.get("JOBS", "2")))
        print(f"kernel: {k}\ninitramfs: {initramfs_path()}\nruntime: {fastpath_path()}")
        return 0
    if cmd == "paths":
        print(f"kernel: {kernel_path()}\ninitramfs: {initramfs_path()}\nruntime: {fastpath_path()}")
        return 0 if artifacts() else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
