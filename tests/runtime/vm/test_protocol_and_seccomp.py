"""The host side's two contracts with C, checked without a VM: the wire format the C programs compile against is
the one protocol.py speaks (protocol.h is generated from it), and the seccomp program compiled for the guest
agent is a filter the kernel accepts and that refuses what Docker's default profile refuses."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from nanovisor.runtime import seccomp, spec_caps
from nanovisor.runtime.vm import protocol, seccomp_bpf


def test_generated_header_agrees_with_protocol_py(tmp_path):
    (tmp_path / "protocol.h").write_text(protocol.c_header())
    names = list(protocol.FRAMES)
    prog = "\n".join([
        '#include <stdio.h>', '#include <stddef.h>', '#include "protocol.h"', "int main(void) {",
        '    printf("%zu %zu %zu %u %d\\n", sizeof(struct nv_hdr), offsetof(struct nv_hdr, id),'
        ' offsetof(struct nv_hdr, len), NV_MAX_PAYLOAD, NV_HEARTBEAT_MS);',
        *(f'    printf("%c", NV_{n});' for n in names), '    return 0;', "}"])
    (tmp_path / "t.c").write_text(prog)
    subprocess.run(["gcc", "-Wall", "-Werror", "-o", str(tmp_path / "t"), str(tmp_path / "t.c")], check=True)
    head, frames = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout.split("\n")
    size, off_id, off_len, max_payload, heartbeat = (int(x) for x in head.split())
    assert (size, off_id, off_len) == (protocol.HDR.size, 4, 8)
    assert (max_payload, heartbeat) == (protocol.MAX_PAYLOAD, protocol.HEARTBEAT_MS)
    assert frames.encode() == b"".join(protocol.FRAMES[n][0] for n in names)
    assert protocol.frame(protocol.EXIT, 7, b"0")[:1] == b"x"


CHILD = r"""
import ctypes, sys
prog = open(sys.argv[1], "rb").read()
libc = ctypes.CDLL(None, use_errno=True)
libc.personality.argtypes = [ctypes.c_ulong]
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
buf = ctypes.create_string_buffer(prog, len(prog))
fp = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
assert libc.prctl(38, 1, 0, 0, 0) == 0                      # PR_SET_NO_NEW_PRIVS
assert libc.syscall(317, 1, 0, ctypes.byref(fp)) == 0, ctypes.get_errno()  # seccomp(SET_MODE_FILTER)
for persona in (0x40000, 0xFFFFFFFF):                         # refused / allowed (a query) by the profile
    r = libc.personality(persona)
    print(r if r == -1 else "ok", ctypes.get_errno() if r == -1 else 0)
print(open("/proc/self/status").read().split("Seccomp:")[1].split()[0])
"""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers in the probe are x86_64's")
def test_default_profile_compiles_to_a_filter_the_kernel_enforces(tmp_path):
    section = seccomp.to_oci(seccomp.default_profile(), spec_caps.DEFAULT_CAPS)
    program = seccomp_bpf.compile_section(section)
    assert len(program) % 8 == 0 and len(program) > 8 * 100
    assert seccomp_bpf.compile_section(section) == program  # the cached copy is the same program
    (tmp_path / "prog").write_bytes(program)
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "prog")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["-1 1", "ok 0", "2"]  # EPERM, as runc's filter answers; filter mode


def test_unsupported_profiles_are_refused():
    with pytest.raises(seccomp_bpf.SeccompError, match="SCMP_ACT_NOTIFY"):
        seccomp_bpf.compile_section({"defaultAction": "SCMP_ACT_NOTIFY"})
    with pytest.raises(seccomp_bpf.SeccompError, match="flag"):
        seccomp_bpf.flags({"flags": ["SECCOMP_FILTER_FLAG_BOGUS"]})
