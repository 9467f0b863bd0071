"""The OCI `linux.seccomp` section compiled to a classic BPF program, host-side, for the guest agent to install.

Mechanism: libseccomp (the library runc itself links, libseccomp2) through ctypes, with runc's rules for turning
the OCI section into libseccomp calls (libcontainer/seccomp/seccomp_linux.go): unknown syscall names are skipped,
rules whose action is the default action are skipped, conditions on one argument index repeated become one rule
each (OR), otherwise one rule with all of them (AND); MASKED_EQ takes (mask=value, expected=valueTwo). So the VM
guest gets the very filter the process runtime installs from the same config.json.

Why host-side: the guest agent stays a small static C program with no JSON parser or syscall tables; the program
is plain bytes (8 per instruction) the agent passes to seccomp(2). Compiling Docker's default profile costs ~20 ms
(~10 ms of it loading libseccomp), so programs are cached on disk by the section's text: a start then pays a
hash and a file read (~0.3 ms).
"""

from __future__ import annotations

import errno as errno_mod
import hashlib
import json
import os
from functools import cache

# libseccomp's action values (seccomp.h)
_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000

_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# seccomp(2) SECCOMP_SET_MODE_FILTER flags, as runc accepts them in the spec
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32}


class SeccompError(ValueError):
    """The profile cannot be compiled (reported at create, as runc reports it)."""


@cache
def _lib():
    """(libseccomp, struct scmp_arg_cmp); ctypes is imported here only: a start with a cached program needs neither."""
    import ctypes

    class ArgCmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                    ("datum_b", ctypes.c_uint64)]

    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as e:
        raise SeccompError(f"seccomp: libseccomp2 is not installed ({e})") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib, ArgCmp


def _action(name: str, errno_ret: int | None) -> int:
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return _ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return _ACT_TRAP
    if name == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | ((errno_mod.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | ((errno_mod.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_LOG":
        return _ACT_LOG
    if name == "SCMP_ACT_ALLOW":
        return _ACT_ALLOW
    raise SeccompError(f"seccomp: action {name or '(none)'} is not supported in VM isolation")


def _arch_name(oci: str) -> bytes:
    """SCMP_ARCH_X86_64 -> b"x86_64" (libseccomp's names)."""
    return oci.removeprefix("SCMP_ARCH_").lower().encode()


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise SeccompError(f"seccomp: {what}: {os.strerror(-rc)}")


def _build(section: dict) -> bytes:
    lib, ArgCmp = _lib()
    default = _action(section.get("defaultAction", ""), section.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SeccompError("seccomp: cannot initialise libseccomp")
    try:
        for arch in section.get("architectures") or []:
            token = lib.seccomp_arch_resolve_name(_arch_name(arch))
            if token == 0:
                raise SeccompError(f"seccomp: unknown architecture {arch}")
            rc = lib.seccomp_arch_add(ctx, token)
            if rc != -errno_mod.EEXIST:
                _check(rc, f"add architecture {arch}")
        for call in section.get("syscalls") or []:
            action = _action(call.get("action", ""), call.get("errnoRet"))
            if action == default:
                continue  # libseccomp refuses it; runc skips it too
            conds = [ArgCmp(int(a.get("index", 0)), _OPS.get(a.get("op", ""), 0), int(a.get("value", 0)),
                             int(a.get("valueTwo", 0))) for a in call.get("args") or []]
            if any(c.op == 0 for c in conds):
                raise SeccompError("seccomp: unknown comparison operator")
            indexes = [c.arg for c in conds]
            groups = [[c] for c in conds] if len(set(indexes)) < len(indexes) else [conds]
            for name in call.get("names") or []:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp/arch
                    continue
                for group in groups:
                    arr = (ArgCmp * len(group))(*group) if group else None
                    _check(lib.seccomp_rule_add_array(ctx, action, nr, len(group), arr), f"rule for {name}")
        fd = os.memfd_create("nv-seccomp", os.MFD_CLOEXEC)
        try:
            _check(lib.seccomp_export_bpf(ctx, fd), "export")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


def compile_section(section: dict) -> bytes:
    """The BPF program (struct sock_filter[]) for an OCI linux.seccomp section."""
    from nanovisor.runtime.vm import guest

    text = json.dumps(section, sort_keys=True)
    try:  # a libseccomp upgrade (any dpkg run) changes the key: its syscall tables may have grown
        stamp = str(guest.DPKG_STATUS.stat().st_mtime_ns)
    except OSError:
        stamp = ""
    cached = guest.GUEST_CACHE / "seccomp" / f"{hashlib.sha256((stamp + text).encode()).hexdigest()[:32]}.bpf"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    program = _build(json.loads(text))
    try:  # best effort: a read-only cache only costs the next start a compile
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}")
        tmp.write_bytes(program)
        tmp.rename(cached)
    except OSError:
        pass
    return program


def flags(section: dict) -> int:
    out = 0
    for f in section.get("flags") or []:
        if f not in FLAGS:
            raise SeccompError(f"seccomp: flag {f} is not supported")
        out |= FLAGS[f]
    return out

