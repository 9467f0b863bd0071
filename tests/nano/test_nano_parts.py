"""The pure parts of nano build/slim: ELF needs, the path filter, symlinks resolved inside the image's root
only, and the pruning of apt's plan."""

from __future__ import annotations

import os
from pathlib import Path

from nanovisor.nano.debcache import Deb
from nanovisor.nano.elf import read_elf
from nanovisor.nano.resolve import needed
from nanovisor.nano.slim import resolve_in_root
from nanovisor.nano.tree import PathFilter, merged_usr


def test_elf_interpreter_and_needed_libraries():
    info = read_elf("/usr/bin/ls")
    assert info is not None and info.interp == "/lib64/ld-linux-x86-64.so.2"
    assert "libc.so.6" in info.needed
    assert read_elf("/etc/passwd") is None


def test_path_filter_defaults_keep_and_drop():
    f = PathFilter(keep=["usr/share/man/man1/keep.1.gz"], drop=["usr/bin/extra"])
    assert f.dropped("usr/share/doc/python3/changelog.gz")
    assert not f.dropped("usr/share/doc/python3/copyright")
    assert f.dropped("usr/share/man/man1/python3.1.gz") and not f.dropped("usr/share/man/man1/keep.1.gz")
    assert f.dropped("usr/bin/extra") and not f.dropped("usr/bin/python3")
    assert merged_usr("lib/x86_64-linux-gnu/libc.so.6") == "usr/lib/x86_64-linux-gnu/libc.so.6"
    assert merged_usr("etc/passwd") == "etc/passwd"


def test_symlinks_resolve_inside_the_root(tmp_path: Path):
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/libz.so.1.2").write_text("z")
    os.symlink("usr/lib", root / "lib")
    os.symlink("libz.so.1.2", root / "usr/lib/libz.so.1")
    os.symlink("/etc", root / "evil")                    # absolute: the image's /etc, never the host's
    os.symlink("../../../../..", root / "usr/lib/up")    # climbing out stops at the root
    links: set[str] = set()
    assert resolve_in_root(root, "/lib/libz.so.1", links) == "usr/lib/libz.so.1.2"
    assert links == {"lib", "usr/lib/libz.so.1"}
    assert resolve_in_root(root, "evil/passwd", set()) == "etc/passwd"
    assert resolve_in_root(root, "usr/lib/up/etc/shadow", set()) == "etc/shadow"


def _deb(name: str, depends: str = "", provides: str = "") -> Deb:
    control = {"Package": name, "Version": "1", "Depends": depends, "Provides": provides}
    return Deb(name, "1", "amd64", Path(f"/nonexistent/{name}.deb"), control)


def test_needed_prunes_what_only_machinery_pulls_in():
    plan = [_deb("libc6"), _deb("perl-base", "libc6"), _deb("adduser", "perl-base, passwd"), _deb("passwd"),
            _deb("debconf"), _deb("libssl3", "libc6, debconf (>= 0.5) | debconf-2.0"),
            _deb("app", "libssl3 (>= 3), adduser, libc6:any")]
    kept = needed(plan, ["app"], skip={"adduser", "debconf"})
    assert [d.name for d in kept] == ["libc6", "libssl3", "app"]
