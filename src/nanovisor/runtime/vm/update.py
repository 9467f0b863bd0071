"""`nanovisor-vm-runtime update`: new linux.resources for a running VM container, applied by the guest agent to
the container's cgroup in the guest (memory, pids, CPU shares and quota). What a running VM cannot take (memory
above what it booted with; a CPU quota its guest kernel cannot enforce) is refused, so `docker update` answers a
clear 400 instead of accepting a limit that does not apply."""

from __future__ import annotations

import json
from pathlib import Path

from nanovisor.runtime.vm import bundle as bundle_mod
from nanovisor.runtime.vm import client
from nanovisor.runtime.vm.state import Container, RuntimeError_


def _boot_resources(c: Container) -> dict:
    """The linux.resources the VM was created (and sized) with."""
    spec = json.loads((Path(c.load()["bundle"]) / "config.json").read_text())
    return (spec.get("linux") or {}).get("resources") or {}


def guest_settings(boot: dict, new: dict) -> str:
    """The agent's "file=value;..." for the new resources; RuntimeError_ for what a running VM cannot take."""
    out: list[str] = []
    limit = (new.get("memory") or {}).get("limit")
    if limit and limit > 0:
        most = bundle_mod.max_limit_bytes(bundle_mod.guest_mib(boot))
        if limit > most:
            raise RuntimeError_(f"cannot raise the memory of a running VM container above its boot size "
                                f"({most >> 20} MB): stop it first")
        out.append(f"memory.max={limit}")
    if "pids" in new:
        pids = (new.get("pids") or {}).get("limit") or 0
        out.append(f"pids.max={pids if pids > 0 else 'max'}")
    cpu, boot_cpu = new.get("cpu") or {}, boot.get("cpu") or {}
    if cpu.get("shares"):
        out.append(f"cpu.weight={bundle_mod.cpu_weight(cpu['shares'])}")
    quota, period = cpu.get("quota") or 0, cpu.get("period") or 100000
    if (quota, period) != (boot_cpu.get("quota") or 0, boot_cpu.get("period") or 100000) and quota:
        out.append(f"cpu.max={quota if quota > 0 else 'max'} {period}")
    return ";".join(out)


def update(c: Container, resources: dict) -> None:
    settings = guest_settings(_boot_resources(c), resources)
    if not settings:
        return
    err = client.call(c, {"op": "update", "data": settings})["data"]
    if err.startswith("cannot set cpu.max"):
        raise RuntimeError_("cannot change the CPU quota of a running VM container (its guest kernel has no CPU "
                            "bandwidth control): stop it first")
    if err:
        raise RuntimeError_(err)
