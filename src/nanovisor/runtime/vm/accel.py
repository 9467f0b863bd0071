"""Which accelerator the microVM uses, and why (shown by `docker info`).

KVM only when it really works: this family of hosts exposes a PVM-backed /dev/kvm (kvm_pvm module, no vmx/svm
CPU flag) on which an ordinary guest kernel takes one exit per instruction and never boots, so that case — and
any host without /dev/kvm — falls back to TCG. NANOVISOR_VM_ACCEL=kvm|tcg overrides the choice.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def tsc_khz() -> int:
    """Host TSC frequency; TCG guests need it as tsc_early_khz= or they hang calibrating on a busy host."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return int(float(line.split(":", 1)[1]) * 1000)
    except (OSError, ValueError):
        pass
    return 2_000_000


@lru_cache(maxsize=1)
def describe() -> dict:
    """{"accelerator": "kvm"|"tcg", "reason": str, "kvm_device": bool, "pvm": bool, "hw_virt": bool}."""
    forced = os.environ.get("NANOVISOR_VM_ACCEL", "").lower()
    kvm_dev = os.access("/dev/kvm", os.R_OK | os.W_OK)
    pvm = Path("/sys/module/kvm_pvm").exists()
    hw = bool(_cpu_flags() & {"vmx", "svm"})
    info = {"kvm_device": kvm_dev, "pvm": pvm, "hw_virt": hw}
    if forced in ("kvm", "tcg"):
        return {"accelerator": forced, "reason": f"forced by NANOVISOR_VM_ACCEL={forced}", **info}
    if not kvm_dev:
        return {"accelerator": "tcg", "reason": "/dev/kvm is not available", **info}
    if pvm:
        return {"accelerator": "tcg",
                "reason": "/dev/kvm is PVM-backed (kvm_pvm loaded): a standard guest kernel cannot boot on it",
                **info}
    if not hw:
        return {"accelerator": "tcg", "reason": "CPU has no vmx/svm flag: no hardware virtualization", **info}
    return {"accelerator": "kvm", "reason": "/dev/kvm with hardware virtualization (vmx/svm)", **info}
