"""Seccomp: Docker-format profiles (default, `seccomp=<json>`; a FILE is read by the client) → the OCI `linux.seccomp`.

A Docker profile is an allow list whose rules carry conditions: `includes`/`excludes` on architecture,
capability and kernel version. They are resolved here, against the container's bounding capabilities, the
host's architecture and kernel, exactly as moby's setupSeccomp does; the runtime receives plain rules.
seccomp_default.json holds Docker's default profile (deny with EPERM, allow ~350 syscalls, unlock
mount/unshare/... with CAP_SYS_ADMIN and forbid namespace-creating clone flags without it).
"""

from __future__ import annotations

import copy
import json
import os
import platform
from functools import cache
from pathlib import Path

from nanovisor.errors import InvalidParameter

_DEFAULT_FILE = Path(__file__).with_name("seccomp_default.json")

# uname machine → (Go arch name used by profile filters, libseccomp native arch)
_ARCHES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "i686": ("386", "SCMP_ARCH_X86"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
}


def native_arch() -> tuple[str, str]:
    machine = platform.machine()
    return _ARCHES.get(machine, (machine, "SCMP_ARCH_" + machine.upper()))


def kernel_version() -> tuple[int, int]:
    release = os.uname().release
    nums = []
    for part in release.split("-", 1)[0].split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        nums.append(int(digits or 0))
    return (nums + [0, 0])[0], (nums + [0, 0])[1]


def _parse_kernel(text: str) -> tuple[int, int]:
    try:
        major, _, minor = str(text).partition(".")
        return int(major), int(minor.split(".")[0] or 0)
    except ValueError:
        raise InvalidParameter(f"invalid kernel version: {text}") from None


@cache
def _default_text() -> str:
    return _DEFAULT_FILE.read_text()


def default_profile() -> dict:
    """Docker's default profile, in Docker's format (a fresh copy the caller may change)."""
    return json.loads(_default_text())


def load_profile(value: str) -> dict | None:
    """The profile named by `--security-opt seccomp=VALUE`; None for "unconfined".

    VALUE is the profile's JSON content: the docker CLI (and nanovisor's) reads a file on the client's side
    and sends what it holds, as dockerd expects. A path is refused: the daemon never opens host files a
    request names (a FIFO there would hang it, any root-readable file would be parsed). "builtin" or ""
    mean the default profile.
    """
    value = value.strip()
    if value == "unconfined":
        return None
    if value in ("", "builtin"):
        return default_profile()
    if not value.startswith("{"):
        raise InvalidParameter(f"invalid seccomp profile {value[:200]!r}: the daemon takes the profile's JSON "
                               "content, not a path (the docker CLI reads the file and sends its content)")
    try:
        profile = json.loads(value)
    except (ValueError, RecursionError) as e:
        raise InvalidParameter(f"Decoding seccomp profile failed: {e}") from None
    if not isinstance(profile, dict):
        raise InvalidParameter("Decoding seccomp profile failed: not a JSON object")
    return profile


def read_profile_file(value: str) -> str:
    """Client side of `--security-opt seccomp=FILE` (the docker CLI's parseSecurityOpts): the file's JSON,
    compacted; "unconfined" and "builtin" pass through."""
    if value in ("unconfined", "builtin"):
        return value
    try:
        text = Path(value).read_text()
    except OSError as e:
        raise InvalidParameter(f"opening seccomp profile ({value}) failed: {e.strerror}") from None
    try:
        return json.dumps(json.loads(text), separators=(",", ":"))
    except (ValueError, RecursionError) as e:
        raise InvalidParameter(f"compacting json for seccomp profile ({value}) failed: {e}") from None


def _filter_ok(flt: dict | None, arch: str, caps: set[str], kernel: tuple[int, int], include: bool) -> bool:
    """Whether a rule survives its includes (include=True) or excludes (include=False) filter."""
    if not flt:
        return True
    arches = flt.get("arches") or []
    want_caps = flt.get("caps") or []
    min_kernel = flt.get("minKernel")
    if include:
        if arches and arch not in arches:
            return False
        if any(c not in caps for c in want_caps):
            return False
        if min_kernel and kernel < _parse_kernel(min_kernel):
            return False
        return True
    if arches and arch in arches:
        return False
    if any(c in caps for c in want_caps):
        return False
    if min_kernel and kernel >= _parse_kernel(min_kernel):
        return False
    return True


def to_oci(profile: dict, capabilities: list[str], arch: tuple[str, str] | None = None,
           kernel: tuple[int, int] | None = None) -> dict | None:
    """The OCI linux.seccomp section for a Docker-format profile and the container's bounding caps."""
    go_arch, native = arch or native_arch()
    kernel = kernel or kernel_version()
    caps = set(capabilities)
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidParameter("both 'architectures' and 'archMap' are specified in the seccomp profile, "
                               "use either 'architectures' or 'archMap'")
    out: dict = {"defaultAction": profile.get("defaultAction", "")}
    for key in ("defaultErrnoRet", "listenerPath", "listenerMetadata", "flags"):
        if profile.get(key) not in (None, "", []):
            out[key] = profile[key]
    architectures = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            architectures += [native, *(entry.get("subArchitectures") or [])]
            break
    if architectures:
        out["architectures"] = architectures
    syscalls = []
    for rule in profile.get("syscalls") or []:
        names = list(rule.get("names") or [])
        if rule.get("name"):
            if names:
                raise InvalidParameter("use either 'name' or 'names'")
            names = [rule["name"]]
        if not _filter_ok(rule.get("excludes"), go_arch, caps, kernel, include=False):
            continue
        if not _filter_ok(rule.get("includes"), go_arch, caps, kernel, include=True):
            continue
        call: dict = {"names": names, "action": rule.get("action", "")}
        if rule.get("errnoRet") is not None:
            call["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            call["args"] = copy.deepcopy(rule["args"])
        syscalls.append(call)
    if syscalls:
        out["syscalls"] = syscalls
    return out
