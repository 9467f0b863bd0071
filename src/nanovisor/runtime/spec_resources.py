"""HostConfig resource settings → OCI linux.resources, devices, rlimits and sysctls, with Docker's checks.

validate_host_config() carries moby's create-time messages (verifyPlatformContainerResources and friends)
so the engine can reject a bad container at create; build_spec calls it again so a spec is never built
from values runc would choke on.
"""

from __future__ import annotations

import json
import os
import re
import resource
import stat
from collections.abc import Iterable

from nanovisor.errors import InvalidParameter

MIN_MEMORY = 6 * 1024 * 1024
CPU_PERIOD = 100_000  # µs; what --cpus is expressed against
MIN_SHARES, MAX_SHARES = 2, 262144
DEFAULT_SHM_SIZE = 64 * 1024 * 1024

# Default device cgroup: deny all, then null, zero, full, random, urandom, tty, ptmx/pts; never /dev/net/tun.
DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
]

# go-units' ulimit names → Linux RLIMIT_* numbers (Python's resource module lacks some of them).
RLIMITS = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7,
    "memlock": 8, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
}

# Sysctls that live in a namespace the container owns (runc's list): IPC ones, and net.* with a netns.
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
_UTS_SYSCTLS = {"kernel.domainname", "kernel.hostname"}
_CGROUP_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def _int(hc: dict, key: str) -> int:
    value = hc.get(key)
    return int(value) if value else 0


def validate_host_config(hc: dict, ncpu: int | None = None) -> None:
    """Raise InvalidParameter with moby's text for resource values Docker refuses."""
    memory, swap, reservation = _int(hc, "Memory"), _int(hc, "MemorySwap"), _int(hc, "MemoryReservation")
    if memory != 0 and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if swap > 0 and memory == 0:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise InvalidParameter(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    if reservation != 0 and reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
    nano, period, quota = _int(hc, "NanoCpus"), _int(hc, "CpuPeriod"), _int(hc, "CpuQuota")
    if nano > 0 and period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = ncpu or os.cpu_count() or 1
    if nano < 0 or nano > ncpu * 10**9:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if period != 0 and not 1000 <= period <= 1_000_000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if quota > 0 and quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    weight = _int(hc, "BlkioWeight")
    if weight > 0 and not 10 <= weight <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    oom = _int(hc, "OomScoreAdj")
    if not -1000 <= oom <= 1000:
        raise InvalidParameter(f"Invalid value {oom}, range for oom score adj is [-1000, 1000]")
    if _int(hc, "ShmSize") < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    for ul in hc.get("Ulimits") or []:
        _check_ulimit(ul)
    for rule in hc.get("DeviceCgroupRules") or []:
        parse_cgroup_rule(rule)


def _memsw_supported() -> bool:
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") or \
        os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def resources(hc: dict) -> dict:
    """OCI linux.resources (memory, cpu, pids, blockIO); devices are added by the caller."""
    out: dict = {}
    memory: dict = {}
    mem, swap, reservation = _int(hc, "Memory"), _int(hc, "MemorySwap"), _int(hc, "MemoryReservation")
    if mem > 0:
        memory["limit"] = mem
        if swap == 0:
            swap = 2 * mem  # Docker's default: as much swap as memory
    if reservation > 0:
        memory["reservation"] = reservation
    if mem > 0 and (swap > 0 or swap == -1) and _memsw_supported():
        memory["swap"] = swap
    if hc.get("MemorySwappiness") is not None and hc["MemorySwappiness"] >= 0:
        memory["swappiness"] = int(hc["MemorySwappiness"])
    if hc.get("OomKillDisable") is not None:
        memory["disableOOMKiller"] = bool(hc["OomKillDisable"])
    if memory:
        out["memory"] = memory
    cpu: dict = {}
    nano = _int(hc, "NanoCpus")
    if nano > 0:
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = nano * CPU_PERIOD // 10**9
    shares = _int(hc, "CpuShares")
    if shares:
        cpu["shares"] = min(max(shares, MIN_SHARES), MAX_SHARES)
    if _int(hc, "CpuPeriod"):
        cpu["period"] = _int(hc, "CpuPeriod")
    if _int(hc, "CpuQuota"):
        cpu["quota"] = _int(hc, "CpuQuota")
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if cpu:
        out["cpu"] = cpu
    pids = hc.get("PidsLimit")
    if pids is not None:
        out["pids"] = {"limit": int(pids) if int(pids) > 0 else -1}  # 0 / -1: unlimited
    if _int(hc, "BlkioWeight"):
        out["blockIO"] = {"weight": _int(hc, "BlkioWeight")}
    return out


# devices -------------------------------------------------------------------------------------------------
def parse_device(spec: str) -> dict:
    """`--device /dev/x[:/dev/y][:rwm]` → a HostConfig.Devices entry (what the docker CLI posts)."""
    parts = spec.split(":")
    perms = "rwm"
    if len(parts) == 3:
        src, dst, perms = parts
    elif len(parts) == 2:
        src, dst = parts
        if _valid_perms(dst):
            dst, perms = src, dst
    elif len(parts) == 1:
        src = dst = parts[0]
    else:
        raise InvalidParameter(f"invalid device specification: {spec}")
    if not _valid_perms(perms):
        raise InvalidParameter(f"invalid device specification: {spec}")
    if not dst.startswith("/"):
        raise InvalidParameter(f"{dst} is not an absolute path")
    return {"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}


def _valid_perms(perms: str) -> bool:
    return bool(perms) and all(c in "rwm" for c in perms) and len(set(perms)) == len(perms)


def _device_from_path(path: str, perms: str) -> tuple[dict, dict] | None:
    st = os.lstat(path)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    dev = {"path": path, "type": kind, "major": major, "minor": minor,
           "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    rule = {"allow": True, "type": kind, "major": major, "minor": minor, "access": perms}
    return dev, rule


def devices_from_path(on_host: str, in_container: str, perms: str) -> tuple[list[dict], list[dict]]:
    """A device node, or every device node under a directory (moby's DevicesFromPath)."""
    resolved = os.path.realpath(on_host) if os.path.islink(on_host) else on_host
    in_container = in_container or on_host
    try:
        found = _device_from_path(resolved, perms)
    except OSError as e:
        raise InvalidParameter(f"error gathering device information while adding custom device "
                               f"{json.dumps(on_host)}: {(e.strerror or str(e)).lower()}") from None
    if found:
        dev, rule = found
        dev["path"] = in_container
        return [dev], [rule]
    devs, rules = [], []
    if os.path.isdir(resolved):
        for dirpath, _dirs, files in os.walk(resolved):
            for name in sorted(files):
                full = os.path.join(dirpath, name)
                try:
                    child = _device_from_path(full, perms)
                except OSError:
                    continue
                if child:
                    child[0]["path"] = full.replace(resolved, in_container, 1)
                    devs.append(child[0])
                    rules.append(child[1])
    if devs:
        return devs, rules
    raise InvalidParameter(f"error gathering device information while adding custom device "
                           f"{json.dumps(on_host)}: not a device node")


def parse_cgroup_rule(rule: str) -> dict:
    """`--device-cgroup-rule "c 1:3 mr"` → an OCI device cgroup entry."""
    m = _CGROUP_RULE.match(rule)
    if not m:
        raise InvalidParameter(f"invalid device cgroup rule format: '{rule}'")
    kind, major, minor, access = m.groups()
    out: dict = {"allow": True, "type": kind, "access": access}
    if major != "*":
        out["major"] = int(major)
    if minor != "*":
        out["minor"] = int(minor)
    return out


_SKIP_HOST_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def host_devices() -> list[dict]:
    """Every device node under the host's /dev, for --privileged (containerd's HostDevices)."""
    out = []
    for dirpath, dirs, files in os.walk("/dev"):
        if dirpath == "/dev":
            dirs[:] = [d for d in dirs if d not in _SKIP_HOST_DIRS]
        for name in sorted(files):
            full = os.path.join(dirpath, name)
            if full == "/dev/console":
                continue
            try:
                found = _device_from_path(full, "rwm")
            except OSError:
                continue
            if found:
                out.append(found[0])
    return out


def linux_devices(hc: dict) -> tuple[list[dict], list[dict]]:
    """(linux.devices, linux.resources.devices) for Devices / DeviceCgroupRules / Privileged."""
    devs: list[dict] = []
    if hc.get("Privileged"):
        devs = host_devices()
        for d in hc.get("Devices") or []:
            if d.get("PathOnHost") != d.get("PathInContainer"):
                devs += devices_from_path(d["PathOnHost"], d.get("PathInContainer") or "", "rwm")[0]
        return devs, [{"allow": True, "access": "rwm"}]
    rules = [dict(r) for r in DEFAULT_DEVICE_RULES]
    for d in hc.get("Devices") or []:
        perms = d.get("CgroupPermissions") or "rwm"
        if not _valid_perms(perms):
            raise InvalidParameter(f"invalid device cgroup permissions: {perms}")
        more_devs, more_rules = devices_from_path(d.get("PathOnHost", ""), d.get("PathInContainer") or "", perms)
        devs += more_devs
        rules += more_rules
    rules += [parse_cgroup_rule(r) for r in hc.get("DeviceCgroupRules") or []]
    return devs, rules


# rlimits ------------------------------------------------------------------------------------------------
def _check_ulimit(ul: dict) -> tuple[int, int, int]:
    name = str(ul.get("Name", ""))
    if name not in RLIMITS:
        raise InvalidParameter(f"invalid ulimit type: {name}")
    soft, hard = int(ul.get("Soft", 0)), int(ul.get("Hard", 0))
    if soft > hard and hard != -1:
        raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return RLIMITS[name], soft, hard


def rlimits(ulimits: Iterable[dict] | None) -> list[dict]:
    """OCI process.rlimits, never above the engine's own hard limits.

    Raising a hard limit needs CAP_SYS_RESOURCE, which this host's root does not have; runc would fail the
    start, so the request is clamped to what the engine can give (as a user on such a host would get).
    """
    out = []
    for ul in ulimits or []:
        res, soft, hard = _check_ulimit(ul)
        _, host_hard = resource.getrlimit(res)
        unlimited = resource.RLIM_INFINITY
        want_hard = unlimited if hard < 0 else hard
        if host_hard != unlimited and (want_hard == unlimited or want_hard > host_hard):
            want_hard = host_hard
        want_soft = unlimited if soft < 0 else soft
        if want_hard != unlimited and (want_soft == unlimited or want_soft > want_hard):
            want_soft = want_hard
        out.append({"type": "RLIMIT_" + ul["Name"].upper(), "soft": _u64(want_soft), "hard": _u64(want_hard)})
    return out


def _u64(value: int) -> int:
    """OCI rlimits are uint64; unlimited is all ones."""
    return 2**64 - 1 if value == resource.RLIM_INFINITY else value


# sysctls ------------------------------------------------------------------------------------------------
def sysctls(hc: dict, private_net: bool, has_netns: bool, private_ipc: bool, private_uts: bool) -> dict:
    """linux.sysctl: Docker's defaults for a private network, then HostConfig.Sysctls (which win).

    Only namespaced sysctls are accepted; others would change the host (runc's own check, made early).
    """
    out: dict[str, str] = {}
    if private_net:
        if os.path.exists("/proc/sys/net/ipv4/ping_group_range"):
            out["net.ipv4.ping_group_range"] = "0 2147483647"
        if os.path.exists("/proc/sys/net/ipv4/ip_unprivileged_port_start"):
            out["net.ipv4.ip_unprivileged_port_start"] = "0"
    for key, value in (hc.get("Sysctls") or {}).items():
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if not private_ipc:
                raise InvalidParameter(f"sysctl {json.dumps(key)} not allowed in host IPC namespace")
        elif key.startswith("net."):
            if not has_netns:
                raise InvalidParameter(f"sysctl {json.dumps(key)} not allowed in host network namespace")
        elif key in _UTS_SYSCTLS:
            if not private_uts:
                raise InvalidParameter(f"sysctl {json.dumps(key)} not allowed in host UTS namespace")
        else:
            raise InvalidParameter(f"sysctl {json.dumps(key)} is not in a separate kernel namespace")
        out[key] = str(value)
    return out
