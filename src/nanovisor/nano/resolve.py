"""Dependency closure by apt's own resolver, against a private apt root: an empty dpkg status (nothing is
installed), no host configuration, and the package cache as the only (flat, `file:`) source. apt decides
which packages and versions; we only read its plan (`-s`).

`fetch` is the online half: the host's sources and lists, the same empty status, `--download-only` into
the cache: what the install step runs while the network is there."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from nanovisor.errors import InvalidParameter, SystemError_
from nanovisor.nano.debcache import Deb, ensure_index, read_index

_INST = re.compile(r"^Inst (\S+) \((\S+) .*\[(\S+)\]\)")

_APT_CONF = """Dir "{root}/";
Dir::State::status "{root}/status";
Dir::Etc::sourcelist "{root}/sources.list";
Dir::Etc::sourceparts "{root}/sources.list.d";
Dir::Etc::parts "{root}/apt.conf.d";
Dir::Etc::preferences "{root}/preferences";
Dir::Etc::preferencesparts "{root}/preferences.d";
Dir::Cache "{root}/cache";
Dir::State "{root}/state";
Dir::Log "{root}/log";
Debug::NoLocking "1";
APT::Architecture "amd64";
APT::Architectures {{ "amd64"; }};
APT::Install-Recommends "0";
APT::Install-Suggests "0";
Acquire::Languages "none";
"""


def _private_root(root: Path, sources: str) -> dict[str, str]:
    for d in ("sources.list.d", "apt.conf.d", "preferences.d", "cache/archives/partial", "state/lists/partial",
              "log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "status").write_text("")
    (root / "sources.list").write_text(sources)
    (root / "apt.conf").write_text(_APT_CONF.format(root=root))
    return {**os.environ, "APT_CONFIG": str(root / "apt.conf"), "DEBIAN_FRONTEND": "noninteractive",
            "LC_ALL": "C.UTF-8"}


def _apt(args: list[str], env: dict[str, str], what: str) -> str:
    try:
        done = subprocess.run(["apt-get", "-q", *args], env=env, capture_output=True, text=True, timeout=600)
    except OSError as e:
        raise SystemError_(f"apt-get not found: {e}") from e
    if done.returncode != 0:
        errors = [ln for ln in done.stderr.splitlines() if ln.startswith("E:")] or done.stderr.splitlines()[-3:]
        raise InvalidParameter(f"{what}: {' '.join(errors).strip()}")
    return done.stdout


def resolve(packages: list[str], cache: Path, tmp: Path) -> list[Deb]:
    """apt's installation plan for packages on an empty system, as cache entries, in apt's order."""
    ensure_index(cache)
    root = tmp / "apt"
    env = _private_root(root, f"deb [trusted=yes] file:{cache.absolute()} ./\n")
    _apt(["update"], env, f"reading the package cache {cache}")
    plan = _apt(["-s", "install", *packages], env, f"resolving {' '.join(packages)} in the package cache {cache}")
    index = read_index(cache)
    debs = []
    for line in plan.splitlines():
        m = _INST.match(line)
        if m:
            key = m.groups()
            if key not in index:
                raise SystemError_(f"apt planned {key[0]} {key[1]} but the cache has no such .deb")
            debs.append(index[key])
    if not debs:
        raise InvalidParameter(f"nothing to install for {' '.join(packages)}")
    return debs


def fetch(packages: list[str], cache: Path) -> list[Path]:
    """Downloads the closure of packages (as on an empty system) into cache with the host's apt sources."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "partial").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nano-fetch-") as tmp:
        status = Path(tmp) / "status"
        status.write_text("")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _apt(["-y", "--download-only", "--no-install-recommends", "-o", f"Dir::State::status={status}",
              "-o", f"Dir::Cache::archives={cache}", "-o", "Debug::NoLocking=1", "install", *packages], env,
             f"downloading {' '.join(packages)}")
    ensure_index(cache)
    return sorted(cache.glob("*.deb"))


def _names(field: str) -> list[list[str]]:
    """`a (>= 1) | b:any, c` → [["a", "b"], ["c"]]."""
    out = []
    for group in field.split(","):
        alts = [re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", a).strip().split(":")[0] for a in group.split("|")]
        alts = [a for a in alts if a]
        if alts:
            out.append(alts)
    return out


def needed(debs: list[Deb], wanted: Iterable[str], skip: set[str]) -> list[Deb]:
    """The part of apt's plan reachable from wanted over Depends/Pre-Depends without passing through a
    skipped package (install-time machinery such as dpkg, debconf, adduser and their own dependencies)."""
    by_name = {d.name: d for d in debs}
    provides: dict[str, list[str]] = {}
    for d in debs:
        for alts in _names(d.control.get("Provides", "")):
            provides.setdefault(alts[0], []).append(d.name)
    seen: set[str] = set()
    todo = [w for w in wanted if w in by_name]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        d = by_name[name]
        for field in ("Pre-Depends", "Depends"):
            for alts in _names(d.control.get(field, "")):
                for alt in alts:
                    hits = [alt] if alt in by_name else provides.get(alt, [])
                    if hits:
                        todo.extend(h for h in hits[:1] if h not in skip)
                        break
    return [d for d in debs if d.name in seen]
