"""Capabilities: Docker's default set, --cap-add/--cap-drop (with "ALL") and --privileged.

moby's TweakCapabilities rules, then one host-specific step: a capability the engine itself does not hold
(this machine's root lacks CAP_SYS_RESOURCE) is left out, since the kernel refuses to grant it and runc would
fail the whole start.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache

from nanovisor.errors import InvalidParameter

# Index = capability number (linux/capability.h).
KNOWN_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]

DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

ALL = "ALL"


@cache
def all_caps() -> tuple[str, ...]:
    """Every capability this kernel knows (moby's GetAllCapabilities)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read().strip())
    except (OSError, ValueError):
        last = len(KNOWN_CAPS) - 1
    return tuple(KNOWN_CAPS[: last + 1])


@cache
def host_bounding() -> frozenset[str]:
    """Capabilities in the engine's own bounding set: the most a container it starts can get."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    mask = int(line.split()[1], 16)
                    return frozenset(c for i, c in enumerate(KNOWN_CAPS) if mask >> i & 1)
    except (OSError, ValueError):
        pass
    return frozenset(KNOWN_CAPS)


def normalize(caps: Iterable[str]) -> list[str]:
    """Upper-case, add the CAP_ prefix, keep "ALL"; an unknown name is the user's error, as in moby."""
    out = []
    valid = all_caps()
    for cap in caps or []:
        name = cap.upper()
        if name == ALL:
            out.append(name)
            continue
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in valid:
            raise InvalidParameter(f"unknown capability: {json.dumps(name)}")
        out.append(name)
    return out


def tweak(adds: Iterable[str] | None, drops: Iterable[str] | None, privileged: bool,
          basics: Iterable[str] = DEFAULT_CAPS) -> list[str]:
    """The container's capability list by Docker's rules (before limiting to what the host has)."""
    if privileged:
        return list(all_caps())
    adds, drops = list(adds or []), list(drops or [])
    if not adds and not drops:
        return list(basics)
    cap_drop, cap_add = normalize(drops), normalize(adds)
    if ALL in cap_add:
        return [c for c in all_caps() if c not in cap_drop]
    if ALL in cap_drop:
        return [c for c in cap_add if c != ALL]
    caps = [c for c in basics if c not in cap_drop]
    caps += [c for c in cap_add if c not in caps]
    return caps


def container_caps(host_config: dict) -> list[str]:
    """Capabilities for a container's HostConfig, limited to those the engine holds."""
    caps = tweak(host_config.get("CapAdd"), host_config.get("CapDrop"), bool(host_config.get("Privileged")))
    have = host_bounding()
    return [c for c in caps if c in have]


def oci_capabilities(caps: list[str], uid: int = 0) -> dict:
    """The OCI process.capabilities Docker writes: no inheritable or ambient set, and for a non-root user
    only the bounding set, matching what execve gives a non-root program."""
    if uid != 0:
        return {"bounding": list(caps)}
    return {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)}
