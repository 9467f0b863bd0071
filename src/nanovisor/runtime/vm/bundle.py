"""Split an OCI bundle's config.json between the host and the guest.

Host side: bind mounts (volumes, binds, resolv.conf/hosts) are mounted into the rootfs inside virtiofsd's private
mount namespace, so the guest sees them through the one virtio-fs share. Guest side: everything else (proc, sysfs,
tmpfs, devpts, mqueue, cgroup) plus the process description, encoded for the agent.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

# MS_* flags, as runc maps mount options
_FLAGS = {
    "ro": (1, True), "rw": (1, False), "nosuid": (2, True), "suid": (2, False), "nodev": (4, True),
    "dev": (4, False), "noexec": (8, True), "exec": (8, False), "sync": (16, True), "async": (16, False),
    "remount": (32, True), "mand": (64, True), "nomand": (64, False), "dirsync": (128, True),
    "noatime": (1024, True), "atime": (1024, False), "nodiratime": (2048, True), "diratime": (2048, False),
    "bind": (4096, True), "rbind": (4096 | 16384, True), "relatime": (1 << 21, True),
    "norelatime": (1 << 21, False), "strictatime": (1 << 24, True), "nostrictatime": (1 << 24, False),
}
_PROPAGATION = {"private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"}
DEFAULT_MEM_MIB = 256
# Guest RAM on top of the container's --memory: the kernel's reserved memory (~11 MiB) and its unreclaimable slab
# (~10 MiB), so the container reaches its whole limit (a cgroup in the guest) before the guest runs short, and
# `free` in the container shows about its limit (64m: 77 MB total).
GUEST_OVERHEAD_MIB = 24
MIN_GUEST_MIB = 48  # below ~40 MiB the guest does not boot


def guest_mib(resources: dict) -> int:
    """The guest's RAM for the spec's linux.resources: its memory limit plus the guest's own overhead."""
    limit = (resources.get("memory") or {}).get("limit")
    if limit and limit > 0:
        return max(MIN_GUEST_MIB, math.ceil(limit / (1 << 20)) + GUEST_OVERHEAD_MIB)
    return DEFAULT_MEM_MIB


def max_limit_bytes(mem_mib: int) -> int:
    """The largest memory limit a VM of mem_mib can enforce: what it was sized for."""
    return (mem_mib - GUEST_OVERHEAD_MIB) << 20


def cpu_weight(shares: int) -> int:
    """cgroup v1 cpu.shares -> v2 cpu.weight, runc's conversion."""
    return 1 + (max(2, min(shares, 262144)) - 2) * 9999 // 262142


def mount_flags(options: list[str]) -> tuple[int, str]:
    flags, data = 0, []
    for o in options:
        if o in _FLAGS:
            bit, on = _FLAGS[o]
            flags = flags | bit if on else flags & ~bit
        elif o in _PROPAGATION or o in ("tmpcopyup", "rro", "idmap", "ridmap"):
            continue
        else:
            data.append(o)
    return flags, ",".join(data)


@dataclass
class HostBind:
    source: str
    destination: str
    readonly: bool
    recursive: bool


@dataclass
class Plan:
    rootfs: Path
    readonly_root: bool
    binds: list[HostBind] = field(default_factory=list)
    create: list[tuple[str, str]] = field(default_factory=list)   # agent kv for CREATE
    tty: bool = False
    mem_mib: int = DEFAULT_MEM_MIB
    cpus: int = 1


def is_bind(m: dict) -> bool:
    opts = m.get("options") or []
    return m.get("type") == "bind" or "bind" in opts or "rbind" in opts


def is_host_bind(m: dict) -> bool:
    # /dev/shm shared with the host would be a virtio-fs file: the guest gets its own tmpfs instead
    return is_bind(m) and m.get("destination") != "/dev/shm"


CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def process_kv(proc: dict) -> list[tuple[str, str]]:
    """The agent's encoding of an OCI process (the fast path's process_kv writes the same keys for exec).

    Process security, applied by the agent as runc applies it: cap.<set> (names, space separated; absent = the
    sets are left alone, as runc does without `capabilities`), nnp, rlimit ("RLIMIT_X soft hard"), oom_score_adj.
    """
    pairs: list[tuple[str, str]] = [("arg", a) for a in proc.get("args") or []]
    pairs += [("env", e) for e in proc.get("env") or []]
    pairs.append(("cwd", proc.get("cwd") or "/"))
    user = proc.get("user") or {}
    pairs += [("uid", str(user.get("uid", 0))), ("gid", str(user.get("gid", 0)))]
    groups = user.get("additionalGids") or []
    pairs.append(("groups", ",".join(str(g) for g in groups)))
    if user.get("umask") is not None:
        pairs.append(("umask", oct(user["umask"])[2:]))
    caps = proc.get("capabilities")
    if isinstance(caps, dict):
        pairs += [(f"cap.{name}", " ".join(caps.get(name) or [])) for name in CAP_SETS]
    if proc.get("noNewPrivileges"):
        pairs.append(("nnp", "1"))
    for rl in proc.get("rlimits") or []:
        pairs.append(("rlimit", f"{rl['type']} {int(rl['soft'])} {int(rl['hard'])}"))
    if proc.get("oomScoreAdj") is not None:
        pairs.append(("oom_score_adj", str(int(proc["oomScoreAdj"]))))
    if proc.get("terminal"):
        pairs.append(("tty", "1"))
        size = proc.get("consoleSize") or {}
        if size.get("height") and size.get("width"):
            pairs.append(("winsize", f"{size['height']} {size['width']}"))
    return pairs


def rlimit_ceiling() -> list[tuple[str, str]]:
    """The host's own hard limits, as "rlimit.max" entries for the agent, when raising one needs a capability the
    host runtime lacks: runc (no CAP_SYS_RESOURCE on this host) fails a start that asks for more, while the guest
    agent could grant anything. So the agent refuses the same requests runc refuses; none when the host may raise."""
    import resource

    try:
        with open("/proc/self/status") as f:
            eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        eff = 0
    if eff >> 24 & 1:  # CAP_SYS_RESOURCE
        return []
    out = []
    for name in sorted(n for n in dir(resource) if n.startswith("RLIMIT_")):
        hard = resource.getrlimit(getattr(resource, name))[1]
        if hard != resource.RLIM_INFINITY:
            out.append(("rlimit.max", f"{name} {hard}"))
    return out


def plan(bundle: Path) -> Plan:
    spec = json.loads((bundle / "config.json").read_text())
    root = spec.get("root") or {}
    rootfs = Path(root.get("path") or "rootfs")
    if not rootfs.is_absolute():
        rootfs = bundle / rootfs
    if not rootfs.is_dir():
        raise FileNotFoundError(f"rootfs ({rootfs}) does not exist")
    proc = spec.get("process") or {}
    p = Plan(rootfs=rootfs, readonly_root=bool(root.get("readonly")), tty=bool(proc.get("terminal")))
    kvs = process_kv(proc)
    if proc.get("rlimits"):
        kvs += rlimit_ceiling()
    if spec.get("hostname"):
        kvs.append(("hostname", spec["hostname"]))
    if p.readonly_root:
        kvs.append(("root.ro", "1"))
    for m in spec.get("mounts") or []:
        dest = m.get("destination", "")
        if not dest.startswith("/"):
            dest = "/" + dest
        opts = m.get("options") or []
        if is_host_bind(m):
            p.binds.append(HostBind(m.get("source", ""), dest, "ro" in opts, "rbind" in opts))
            kvs.append(("submount", dest))  # the agent mounts it before a read-only root can taint it
            continue
        fstype = m.get("type") or "tmpfs"
        if is_bind(m):  # /dev/shm bind: a private tmpfs in the guest
            fstype, opts = "tmpfs", ["nosuid", "nodev", "noexec", "mode=1777", "size=65536k"]
        flags, data = mount_flags(opts)
        src = m.get("source") or fstype
        kvs.append(("mount", "\x1f".join([src, dest, fstype, str(flags), data])))
    linux = spec.get("linux") or {}
    kvs += [("masked", x) for x in linux.get("maskedPaths") or []]
    kvs += [("readonly", x) for x in linux.get("readonlyPaths") or []]
    kvs += [("sysctl", f"{k}={v}") for k, v in (linux.get("sysctl") or {}).items()]
    if linux.get("seccomp"):  # the same filter runc would install, compiled here (the agent has no JSON)
        from nanovisor.runtime.vm import seccomp_bpf

        kvs += [("seccomp", seccomp_bpf.compile_section(linux["seccomp"]).hex()),
                ("seccomp.flags", str(seccomp_bpf.flags(linux["seccomp"])))]
    p.create = kvs
    res = linux.get("resources") or {}
    p.mem_mib = guest_mib(res)
    limit = (res.get("memory") or {}).get("limit")
    if limit and limit > 0:
        kvs.append(("memory.max", str(limit)))
    pids_limit = (res.get("pids") or {}).get("limit")
    if pids_limit and pids_limit > 0:
        kvs.append(("pids.max", str(pids_limit)))
    cpu = res.get("cpu") or {}
    if cpu.get("shares"):
        kvs.append(("cpu.weight", str(cpu_weight(cpu["shares"]))))
    quota, period = cpu.get("quota"), cpu.get("period")
    if quota and quota > 0 and period:
        p.cpus = max(1, min(os.cpu_count() or 1, math.ceil(quota / period)))
    return p
