"""The runtime seam: the registry hands out the Runtime protocol, and isolation is named nowhere above
runtime/ (DESIGN: "if you find yourself writing `if isolation == "vm"` outside runtime/, the seam is in the
wrong place")."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import nanovisor
from nanovisor.runtime.base import Runtime
from nanovisor.runtime.registry import RuntimeRegistry

SRC = Path(nanovisor.__file__).parent
LITERALS = re.compile(r"""["'](nanovisor-vm|runc|crun|vm|hyperv)["']|VMIsolation""")


def test_no_isolation_literal_outside_runtime():
    found = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] == "runtime":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if LITERALS.search(line):
                found.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert found == []


def test_every_registered_runtime_answers_the_whole_protocol(tmp_path):
    members = {name for name, _ in inspect.getmembers(Runtime) if not name.startswith("_")}
    members |= set(Runtime.__annotations__)
    registry = RuntimeRegistry(tmp_path)
    assert registry.default_name in registry.runtimes
    for name, runtime in registry.runtimes.items():
        assert runtime.name == name
        missing = {m for m in members if not hasattr(runtime, m)}
        assert missing == set(), name
        assert registry.isolation_of(name) == runtime.isolation
        assert not runtime.exists("no-such-container")


def test_isolation_flags_choose_registered_runtimes(tmp_path):
    registry = RuntimeRegistry(tmp_path)
    assert registry.choose("", "") == registry.default_name
    assert registry.choose("process", None) == registry.default_name
    vm = registry.choose("hyperv", None)
    assert registry.choose("vm", None) == vm and registry.get(vm).isolation != "process"
    assert not registry.get(vm).network_shareable and registry.get(vm).reads_network_at_create
    assert registry.isolation_of("gone-runtime") == "process"
    info = registry.info()
    assert all(entry["status"]["isolation"] == registry.isolation_of(name) for name, entry in info.items())
