"""Layer unpacking and `docker cp` extraction against real files: hostile archives are refused with nothing
written outside the target, whiteouts become overlayfs whiteouts, metadata survives, and the layer tar can be
reproduced byte for byte."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from imagehelpers import build_tar

from nanovisor.errors import InvalidParameter, NotFound
from nanovisor.images.tarsplit import replay
from nanovisor.images.unpack import export_tar, extract_into, stat_path, tar_path, unpack_layer


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the target holding a sentinel file no archive may touch."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "sentinel").write_text("original")
    return d


def _tree(p: Path) -> list[str]:
    return sorted(str(x.relative_to(p)) for x in p.rglob("*"))


def _assert_untouched(outside: Path) -> None:
    assert _tree(outside) == ["sentinel"]
    assert (outside / "sentinel").read_text() == "original"


def _raw_header(name: bytes, size: int = 0, typeflag: bytes = b"0", linkname: bytes = b"",
                size_field: bytes | None = None, checksum_ok: bool = True) -> bytes:
    """A ustar header written by hand, for headers tarfile refuses to produce."""
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = size_field if size_field is not None else f"{size:011o}\0".encode()
    h[136:148] = b"14000000000\0"
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[157:157 + len(linkname)] = linkname
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    chk = sum(h) + (0 if checksum_ok else 1)
    h[148:156] = f"{chk:06o}\0 ".encode()
    return bytes(h)


HOSTILE = {
    "dotdot": lambda o: build_tar([{"name": f"../{o.name}/evil", "data": b"x"}]),
    "deep_dotdot": lambda o: build_tar([{"name": "a/../../outside/evil", "data": b"x"}]),
    "absolute_escape": lambda o: build_tar([{"name": f"/../{o.name}/evil", "data": b"x"}]),
    "symlink_then_write": lambda o: build_tar([
        {"name": "link", "type": tarfile.SYMTYPE, "linkname": str(o)},
        {"name": "link/evil", "data": b"x"}]),
    "relative_symlink_then_write": lambda o: build_tar([
        {"name": "link", "type": tarfile.SYMTYPE, "linkname": f"../../{o.name}"},
        {"name": "link/sentinel", "data": b"pwned"}]),
    "symlink_then_overwrite_file": lambda o: build_tar([
        {"name": "d", "type": tarfile.DIRTYPE},
        {"name": "d/l", "type": tarfile.SYMTYPE, "linkname": str(o)},
        {"name": "d/l/sentinel", "data": b"pwned"}]),
    "hardlink_outside": lambda o: build_tar([
        {"name": "h", "type": tarfile.LNKTYPE, "linkname": f"../{o.name}/sentinel"}]),
    "hardlink_absolute": lambda o: build_tar([
        {"name": "h", "type": tarfile.LNKTYPE, "linkname": str(o / "sentinel")}]),
    "hardlink_through_symlink": lambda o: build_tar([
        {"name": "l", "type": tarfile.SYMTYPE, "linkname": str(o)},
        {"name": "h", "type": tarfile.LNKTYPE, "linkname": "l/sentinel"}]),
    "bad_checksum": lambda o: _raw_header(b"f", 1, checksum_ok=False) + b"x" + b"\0" * 511 + b"\0" * 1024,
    "negative_size": lambda o: _raw_header(b"f", size_field=b"\xff" * 12) + b"\0" * 1024,
    "absurd_size": lambda o: _raw_header(b"f", size_field=b"\x80" + b"\x7f" * 11) + b"\0" * 1024,
    "truncated": lambda o: build_tar([{"name": "f", "data": b"y" * 5000}])[:1500],
    "sparse": lambda o: build_tar([{"name": "f", "data": b"", "pax": {"GNU.sparse.major": "1"}}]),
    "nul_in_name": lambda o: build_tar([{"name": "f", "data": b"", "pax": {"path": "a\0b"}}]),
    "unknown_type": lambda o: _raw_header(b"f", typeflag=b"Q") + b"\0" * 1024,
    "negative_octal_size": lambda o: _raw_header(b"f", size_field=b"-0000000001\0") + b"\0" * 1024,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_layer_refused(kind: str, tmp_path: Path, outside: Path):
    layers = tmp_path / "layers"
    data = HOSTILE[kind](outside)
    with pytest.raises(InvalidParameter):
        unpack_layer(io.BytesIO(data), layers)
    _assert_untouched(outside)
    assert list(layers.iterdir()) == []  # no partial layer left behind
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_cp_upload_refused_or_contained(kind: str, tmp_path: Path, outside: Path):
    """For `docker cp` the archive may be refused, or symlinks resolve inside the rootfs: never outside."""
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    try:
        extract_into(rootfs, io.BytesIO(HOSTILE[kind](outside)))
    except (InvalidParameter, NotFound):
        pass
    _assert_untouched(outside)
    assert not (tmp_path / "evil").exists()


def test_cp_upload_resolves_existing_symlinks_inside_rootfs(tmp_path: Path, outside: Path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "usr/lib").mkdir(parents=True)
    os.symlink("/usr/lib", rootfs / "lib")           # absolute, as in real distributions
    os.symlink(str(outside), rootfs / "escape")      # points at the host path, must resolve inside
    extract_into(rootfs, io.BytesIO(build_tar([{"name": "lib/x.so", "data": b"lib"},
                                               {"name": "escape/sentinel", "data": b"pwned"}])))
    assert (rootfs / "usr/lib/x.so").read_bytes() == b"lib"
    assert (rootfs / outside.relative_to("/") / "sentinel").read_bytes() == b"pwned"
    _assert_untouched(outside)


def test_cp_upload_into_subdir_and_errors(tmp_path: Path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "tmp").mkdir(parents=True)
    (rootfs / "file").write_text("f")
    extract_into(rootfs, io.BytesIO(build_tar([{"name": "a/b", "data": b"deep"}])), "/tmp")
    assert (rootfs / "tmp/a/b").read_bytes() == b"deep"
    with pytest.raises(NotFound):
        extract_into(rootfs, io.BytesIO(build_tar([{"name": "x", "data": b""}])), "/nope")
    with pytest.raises(InvalidParameter, match="extraction point is not a directory"):
        extract_into(rootfs, io.BytesIO(build_tar([{"name": "x", "data": b""}])), "/file")
    with pytest.raises(InvalidParameter, match="cannot overwrite directory"):
        extract_into(rootfs, io.BytesIO(build_tar([{"name": "tmp", "data": b""}])),
                     no_overwrite_dir_non_dir=True)


def test_whiteouts_become_overlay_whiteouts(tmp_path: Path):
    data = build_tar([
        {"name": "etc", "type": tarfile.DIRTYPE},
        {"name": "etc/.wh.gone", "data": b""},
        {"name": "opaque", "type": tarfile.DIRTYPE},
        {"name": "opaque/.wh..wh..opq", "data": b""},
        {"name": "opaque/kept", "data": b"k"},
    ])
    info = unpack_layer(io.BytesIO(data), tmp_path / "layers")
    diff = info.path / "diff"
    st = os.lstat(diff / "etc/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert not (diff / "etc/.wh.gone").exists()
    assert os.getxattr(diff / "opaque", "trusted.overlay.opaque") == b"y"
    assert not (diff / "opaque/.wh..wh..opq").exists()
    assert (diff / "opaque/kept").read_bytes() == b"k"


def test_metadata_preserved(tmp_path: Path):
    data = build_tar([
        {"name": "d", "type": tarfile.DIRTYPE, "mode": 0o710, "uid": 1000, "gid": 1001, "mtime": 1_500_000_000},
        {"name": "d/f", "data": b"hello", "mode": 0o4750, "uid": 1000, "gid": 50, "mtime": 1_400_000_000,
         "pax": {"SCHILY.xattr.user.note": "hi"}},
        {"name": "d/hard", "type": tarfile.LNKTYPE, "linkname": "d/f"},
        {"name": "abs", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd", "uid": 7},
        {"name": "null", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3, "mode": 0o666},
        {"name": "fifo", "type": tarfile.FIFOTYPE, "mode": 0o600},
        {"name": "tmp", "type": tarfile.DIRTYPE, "mode": 0o1777},
    ])
    diff = unpack_layer(io.BytesIO(data), tmp_path / "layers").path / "diff"
    st = os.stat(diff / "d/f")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == (0o4750, 1000, 50, 1_400_000_000)
    assert os.getxattr(diff / "d/f", "user.note") == b"hi"
    assert os.stat(diff / "d/hard").st_ino == st.st_ino
    d = os.stat(diff / "d")
    assert (stat.S_IMODE(d.st_mode), d.st_uid, d.st_gid, int(d.st_mtime)) == (0o710, 1000, 1001, 1_500_000_000)
    assert os.readlink(diff / "abs") == "/etc/passwd" and os.lstat(diff / "abs").st_uid == 7
    n = os.lstat(diff / "null")
    assert stat.S_ISCHR(n.st_mode) and n.st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.lstat(diff / "fifo").st_mode)
    assert stat.S_IMODE(os.stat(diff / "tmp").st_mode) == 0o1777


def test_compression_detected_and_diff_id_is_uncompressed_digest(tmp_path: Path):
    data = build_tar([{"name": f"f{i}", "data": os.urandom(3000)} for i in range(20)])
    want = "sha256:" + hashlib.sha256(data).hexdigest()
    plain = unpack_layer(io.BytesIO(data), tmp_path / "a")
    gz = unpack_layer(io.BytesIO(gzip.compress(data)), tmp_path / "b")
    zst = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
    zs = unpack_layer(io.BytesIO(zst), tmp_path / "c")
    assert (plain.diff_id, plain.compression) == (want, "none")
    assert (gz.diff_id, gz.compression) == (want, "gzip")
    assert (zs.diff_id, zs.compression) == (want, "zstd")
    assert _tree(plain.path / "diff") == _tree(zs.path / "diff")


def test_replay_reproduces_the_exact_tar_even_with_duplicates(tmp_path: Path):
    long = "x" * 150 + "/file"
    data = build_tar([
        {"name": "dup", "data": b"first version"},
        {"name": long, "data": b"long name"},
        {"name": "dup", "data": b"second, longer version"},
        {"name": "empty", "data": b""},
    ]) + b"\0" * 4096  # trailing garbage-free padding beyond the end marker is part of the digest
    info = unpack_layer(io.BytesIO(data), tmp_path / "layers")
    assert b"".join(replay(info.path, info.diff_id)) == data
    assert (info.path / "diff/dup").read_bytes() == b"second, longer version"


def test_big_layer_round_trip_across_read_chunks(tmp_path: Path):
    """Hundreds of directories (more than the fd caches hold), headers and contents that straddle the 1 MiB
    read chunks, files bigger than a chunk: every byte lands where it belongs, directory mtimes are the
    archive's, and save replays the very same tar."""
    rng = random.Random(4)
    entries: list[dict] = []
    for i in range(300):
        d = f"d{i % 7}/sub{i:03d}"
        entries.append({"name": d, "type": tarfile.DIRTYPE, "mtime": 1_500_000_000 + i})
        entries.append({"name": f"{d}/f", "data": rng.randbytes(rng.randrange(0, 9000))})
    entries += [{"name": "big/exact", "data": rng.randbytes(1 << 20)},
                {"name": "big/odd", "data": rng.randbytes((5 << 20) // 2 + 123)},
                {"name": "big", "type": tarfile.DIRTYPE, "mtime": 1_234_567_890}]
    data = build_tar(entries)
    info = unpack_layer(io.BytesIO(data), tmp_path / "layers")
    diff = info.path / "diff"
    assert info.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    for e in entries:
        if "data" in e:
            assert (diff / e["name"]).read_bytes() == e["data"]
        else:
            assert int(os.stat(diff / e["name"]).st_mtime) == e["mtime"]
    assert b"".join(replay(info.path, info.diff_id)) == data


def test_wide_trees_unpack_and_replay_within_a_small_fd_limit(tmp_path: Path):
    """Thousands of sibling directories: the directory fd caches stay bounded (no EMFILE under ulimit -n 128)."""
    entries = [{"name": f"a/d{i}", "type": tarfile.DIRTYPE} for i in range(1000)]
    entries += [{"name": f"a/d{i}/f", "data": b"x"} for i in range(0, 1000, 3)]
    (tmp_path / "layer.tar").write_bytes(build_tar(entries))
    code = ("import resource, sys; from pathlib import Path; "
            "from nanovisor.images.unpack import unpack_layer; from nanovisor.images.tarsplit import replay; "
            "resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)); t = Path(sys.argv[1]); "
            "info = unpack_layer(open(t / 'layer.tar', 'rb'), t / 'layers'); "
            "assert b''.join(replay(info.path, info.diff_id)) == (t / 'layer.tar').read_bytes()")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)


def test_directory_times_never_follow_a_symlink_that_replaced_the_directory(tmp_path: Path, outside: Path):
    before = os.stat(outside).st_mtime_ns
    (tmp_path / "c").mkdir()
    c_before = os.stat(tmp_path / "c").st_mtime_ns
    data = build_tar([
        {"name": "a", "type": tarfile.DIRTYPE, "mtime": 1_000_000_000},
        {"name": "a/f", "data": b"x"},
        {"name": "a", "type": tarfile.SYMTYPE, "linkname": str(outside)},
        {"name": "b", "type": tarfile.DIRTYPE},
        {"name": "b/c", "type": tarfile.DIRTYPE, "mtime": 1_000_000_000},
        {"name": "b", "type": tarfile.SYMTYPE, "linkname": str(outside.parent)},
    ])
    diff = unpack_layer(io.BytesIO(data), tmp_path / "layers").path / "diff"
    assert os.readlink(diff / "a") == str(outside) and os.readlink(diff / "b") == str(outside.parent)
    assert os.stat(outside).st_mtime_ns == before
    assert os.stat(tmp_path / "c").st_mtime_ns == c_before
    _assert_untouched(outside)


def test_same_layer_twice_is_one_directory(tmp_path: Path):
    data = build_tar([{"name": "f", "data": b"1"}])
    a = unpack_layer(io.BytesIO(data), tmp_path / "layers")
    b = unpack_layer(io.BytesIO(data), tmp_path / "layers")
    assert a.path == b.path
    assert [p.name for p in (tmp_path / "layers").iterdir()] == [a.path.name]


def test_tar_path_and_stat_stay_inside_root(tmp_path: Path, outside: Path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts").write_text("in container")
    os.symlink("/etc/hosts", root / "hostslink")
    os.symlink(str(outside), root / "escape")
    st = stat_path(root, "/hostslink")
    assert st["name"] == "hostslink" and st["linkTarget"] == "/etc/hosts"
    assert st["mode"] & (1 << 27)  # Go os.ModeSymlink
    assert stat_path(root, "/etc")["mode"] & (1 << 31)
    info, stream = tar_path(root, "/etc/hosts")
    assert info["size"] == len("in container")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
        assert t.getnames() == ["hosts"]
        assert t.extractfile("hosts").read() == b"in container"
    with pytest.raises(NotFound):  # resolves to root/<outside>/sentinel, which does not exist
        tar_path(root, "/escape/sentinel")
    with pytest.raises(NotFound, match="Could not find the file /nope"):
        stat_path(root, "/nope")


def test_export_round_trips_through_unpack(tmp_path: Path):
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "bin/tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "bin/tool", 0o755)
    os.link(root / "bin/tool", root / "bin/alias")
    os.symlink("tool", root / "bin/sym")
    data = b"".join(export_tar(root))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert sorted(t.getnames()) == ["bin", "bin/alias", "bin/sym", "bin/tool"]
    diff = unpack_layer(io.BytesIO(data), tmp_path / "layers").path / "diff"
    assert (diff / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert os.stat(diff / "bin/tool").st_ino == os.stat(diff / "bin/alias").st_ino
    assert os.readlink(diff / "bin/sym") == "tool"
    _, stream = tar_path(root, "/.")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
        assert "bin/tool" in t.getnames()


def test_absurd_mtime_and_owner_refused(tmp_path: Path):
    for pax in ({"mtime": "99999999999999999999"}, {"uid": str(1 << 40)}):
        with pytest.raises(InvalidParameter, match="absurd"):
            unpack_layer(io.BytesIO(build_tar([{"name": "f", "data": b"", "pax": pax}])), tmp_path / "l")
    assert list((tmp_path / "l").iterdir()) == []


def test_archive_ending_right_after_the_last_members_data(tmp_path: Path):
    """The docker CLI's context for `-f ../Dockerfile` stops after the last file's bytes (no padding, no end
    blocks): Go's archive/tar reads it, so do we; a cut inside the padding is still an error."""
    data = b"FROM scratch\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        info = tarfile.TarInfo(".dockerfile.0123")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    cut = buf.getvalue()[:512 + len(data)]
    (tmp_path / "ok").mkdir()
    (tmp_path / "cut").mkdir()
    extract_into(tmp_path / "ok", io.BytesIO(cut), "/")
    assert (tmp_path / "ok" / ".dockerfile.0123").read_bytes() == data
    with pytest.raises(InvalidParameter, match="unexpected EOF"):
        extract_into(tmp_path / "cut", io.BytesIO(cut + b"\0" * 3), "/")
