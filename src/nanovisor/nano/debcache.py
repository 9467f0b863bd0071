"""The local .deb cache nano images are built from: a directory of .deb files plus a flat-repository
`Packages` index that apt can read through a `file:` source. The install step fills it while the network is
there (apt downloads the closure); builds then resolve and unpack offline against it.

The index is regenerated only when the set of .debs changed (their names and sizes are the stamp), from
each package's own control data (`dpkg-deb -f`) plus Filename/Size/SHA256."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from nanovisor.errors import InvalidParameter, SystemError_

DEFAULT_CACHE = Path(os.environ.get("NANOVISOR_DEB_CACHE", "/var/cache/nanovisor/debs"))
INDEX = "Packages"
STAMP = ".index-stamp"


@dataclass(frozen=True)
class Deb:
    """One package of the cache as its index describes it."""

    name: str
    version: str
    arch: str
    path: Path
    control: dict[str, str]

    @property
    def source(self) -> tuple[str, str]:
        """(source package, source version): the `Source:` field, or the binary's own name/version."""
        src = self.control.get("Source", "").strip()
        if not src:
            return self.name, self.version
        name, _, rest = src.partition(" ")
        return name, rest.strip("() ") or self.version

    def sha256(self) -> str:
        return self.control.get("SHA256") or _sha256(self.path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """RFC 822-style control stanzas (continuation lines kept, joined by newlines)."""
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur, key = {}, ""
        elif line[0] in " \t" and key:
            cur[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            cur[key] = value.strip()
    if cur:
        out.append(cur)
    return out


def _stamp(debs: list[Path]) -> str:
    return "\n".join(f"{p.name} {p.stat().st_size}" for p in debs)


def _stanza(deb: Path) -> str:
    try:
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True,
                                 text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemError_(f"dpkg-deb -f {deb.name}: {getattr(e, 'stderr', '') or e}") from e
    return (control.rstrip("\n") + f"\nFilename: ./{deb.name}\nSize: {deb.stat().st_size}\n"
            f"SHA256: {_sha256(deb)}\n")


def ensure_index(cache: Path) -> Path:
    """The cache's Packages file, (re)written when the .debs changed; refuses a missing or empty cache."""
    if not cache.is_dir():
        raise InvalidParameter(f"package cache {cache} does not exist: fill it with scripts/install.sh or "
                               f"`nanovisor nano fetch --package PKG`")
    debs = sorted(cache.glob("*.deb"))
    if not debs:
        raise InvalidParameter(f"package cache {cache} holds no .deb: fill it with scripts/install.sh or "
                               f"`nanovisor nano fetch --package PKG`")
    index, stamp = cache / INDEX, _stamp(debs)
    try:
        if index.is_file() and (cache / STAMP).read_text() == stamp:
            return index
    except OSError:
        pass
    with ThreadPoolExecutor(max_workers=4) as pool:
        text = "\n".join(pool.map(_stanza, debs))
    for name, data in ((INDEX, text), (STAMP, stamp)):
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{name}.")
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, cache / name)
    return index


def read_index(cache: Path) -> dict[tuple[str, str, str], Deb]:
    """(name, version, arch) → Deb for every package of the cache."""
    out = {}
    for st in parse_stanzas(ensure_index(cache).read_text()):
        deb = Deb(st["Package"], st["Version"], st.get("Architecture", ""),
                  cache / st["Filename"].removeprefix("./"), st)
        out[(deb.name, deb.version, deb.arch)] = deb
    return out


if __name__ == "__main__":  # python -m nanovisor.nano.debcache [DIR]: (re)index the cache
    import sys

    print(ensure_index(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CACHE))
