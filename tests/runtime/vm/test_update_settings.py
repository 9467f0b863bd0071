"""What `nanovisor-vm-runtime update` asks the guest agent to write, and what it refuses (no VM needed)."""

from __future__ import annotations

import pytest

from nanovisor.runtime.vm import bundle
from nanovisor.runtime.vm.state import RuntimeError_
from nanovisor.runtime.vm.update import guest_settings

MIB = 1 << 20


def test_memory_pids_and_shares_map_to_the_guest_cgroup():
    boot = {"memory": {"limit": 64 * MIB}}
    new = {"memory": {"limit": 32 * MIB, "swap": 64 * MIB}, "pids": {"limit": 40}, "cpu": {"shares": 512}}
    assert guest_settings(boot, new) == f"memory.max={32 * MIB};pids.max=40;cpu.weight=20"
    assert guest_settings(boot, {"pids": {"limit": 0}}) == "pids.max=max"


def test_memory_above_the_boot_size_is_refused_with_the_size():
    with pytest.raises(RuntimeError_, match=r"above its boot size \(64 MB\): stop it first"):
        guest_settings({"memory": {"limit": 64 * MIB}}, {"memory": {"limit": 65 * MIB}})
    most = bundle.max_limit_bytes(bundle.DEFAULT_MEM_MIB)  # booted without a limit: the default guest
    assert guest_settings({}, {"memory": {"limit": most}}) == f"memory.max={most}"


def test_cpu_quota_is_sent_only_when_it_changes():
    boot = {"cpu": {"quota": 100000, "period": 100000}}
    assert guest_settings(boot, {"cpu": {"quota": 100000, "period": 100000}}) == ""
    assert guest_settings(boot, {"cpu": {"quota": 50000, "period": 100000}}) == "cpu.max=50000 100000"


def test_guest_is_sized_from_the_limit():
    assert bundle.guest_mib({"memory": {"limit": 64 * MIB}}) == 64 + bundle.GUEST_OVERHEAD_MIB
    assert bundle.guest_mib({"memory": {"limit": 6 * MIB}}) == bundle.MIN_GUEST_MIB
    assert bundle.guest_mib({}) == bundle.DEFAULT_MEM_MIB
