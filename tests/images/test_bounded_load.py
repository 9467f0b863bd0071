"""What `docker load` and layer unpacking keep in memory stays bounded whatever the archive says: oversized
or too numerous JSON members and piled-up PAX headers are refused before they are read, and what must be
remembered per member (directory mtimes, file records) moves to a scratch file past a threshold — with the
same result as in memory: the archive's directory mtimes, and `save` replaying the very same tar."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from imagehelpers import build_tar, make_store

from nanovisor.errors import InvalidParameter
from nanovisor.images import spill
from nanovisor.images.archive import MAX_JSON, MAX_JSON_TOTAL
from nanovisor.images.tarsplit import replay
from nanovisor.images.unpack import ContentDigests, extract_into, unpack_layer


def _member(out, name: str, size: int, fill: bytes = b" ", typ: bytes = tarfile.REGTYPE, first: bytes = b"") -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.type = size, typ
    out.write(ti.tobuf(format=tarfile.USTAR_FORMAT))
    out.write(first)
    left = size - len(first)
    block = fill * (1 << 16)
    while left:
        n = min(left, len(block))
        out.write(block[:n])
        left -= n
    out.write(b"\0" * (-size % 512))


def test_a_json_bomb_is_refused_before_it_is_read(tmp_path: Path):
    """~130 MB of JSON-looking members in a ~130 KB gzip: refused at the first oversized header."""
    path = tmp_path / "bomb.tar.gz"
    with gzip.open(path, "wb", compresslevel=9) as out:
        for i in range(2):
            _member(out, f"c{i}.json", 64 << 20, first=b"[")
        out.write(b"\0" * 1024)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(InvalidParameter, match="too large"):
        make_store(tmp_path / "root").load(open(path, "rb"))


def test_json_members_share_one_budget(tmp_path: Path):
    buf = io.BytesIO()
    per = MAX_JSON - 1024
    for i in range(MAX_JSON_TOTAL // per + 1):
        _member(buf, f"blobs/sha256/{i:064x}", per, first=b"{")
    buf.write(b"\0" * 1024)
    buf.seek(0)
    with pytest.raises(InvalidParameter, match="one JSON member too many"):
        make_store(tmp_path / "root").load(buf)


def test_deeply_structured_json_is_refused(tmp_path: Path):
    doc = b"[" + b"{}," * 300_000 + b"{}]"
    data = build_tar([{"name": "manifest.json", "data": doc}])
    with pytest.raises(InvalidParameter, match="too deeply structured"):
        make_store(tmp_path / "root").load(io.BytesIO(data))


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" %s=%s\n" % (key, value)
    n = len(body) + 1
    while len(b"%d" % n) + len(body) != n:
        n += 1
    return b"%d%s" % (n, body)


def test_piled_up_pax_headers_are_refused(tmp_path: Path):
    """Extended headers may not add up past the per-header bound before the member they describe."""
    buf = io.BytesIO()
    for i in range(4):
        records = b"".join(_pax_record(b"SCHILY.xattr.user.k%02d%06d" % (i, j), b"v" * 1000) for j in range(900))
        _member(buf, f"PaxHeaders/{i}", len(records), typ=tarfile.XHDTYPE, first=records)
    _member(buf, "f", 1, fill=b"x")
    buf.write(b"\0" * 1024)
    with pytest.raises(InvalidParameter, match="oversized extended header"):
        unpack_layer(io.BytesIO(buf.getvalue()), tmp_path / "layers")


@pytest.fixture
def spill_early(monkeypatch):
    """Spill to the scratch file after a handful of entries, to exercise that path with small tars."""
    monkeypatch.setattr(spill, "IN_MEMORY", 5)


def test_spilled_directory_times_and_records_give_the_same_layer(tmp_path: Path, spill_early):
    entries: list[dict] = []
    for i in range(40):
        d = f"d{i % 3}/sub-{i:02d}"
        entries.append({"name": d, "type": tarfile.DIRTYPE, "mtime": 1_500_000_000 + i})
        entries.append({"name": f"{d}/f", "data": b"%d" % i})
    entries += [{"name": "d1/sub-01/f", "data": b"rewritten"},          # a file written twice
                {"name": "d0", "type": tarfile.DIRTYPE, "mtime": 1_234_567_890},   # listed last: wins
                {"name": "d0/sub-00", "type": tarfile.DIRTYPE, "mtime": 1_111_111_111},
                {"name": "d0-x", "type": tarfile.DIRTYPE, "mtime": 1_222_222_222}]
    data = build_tar(entries)
    info = unpack_layer(io.BytesIO(data), tmp_path / "layers")
    diff = info.path / "diff"
    assert info.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    want: dict[str, int] = {}
    for e in entries:
        if e.get("type") == tarfile.DIRTYPE:
            want[e["name"]] = e["mtime"]
    for name, mtime in want.items():
        assert int(os.stat(diff / name).st_mtime) == mtime, name
    assert (diff / "d1/sub-01/f").read_bytes() == b"rewritten"
    assert b"".join(replay(info.path, info.diff_id)) == data
    assert not [p for p in info.path.iterdir() if p.name.startswith(".spill-")]


def test_a_layer_of_headers_only_replays_exactly(tmp_path: Path):
    """Thousands of directories and no file content: the recorded skeleton is framed in pieces."""
    entries = [{"name": f"d{i:05d}", "type": tarfile.DIRTYPE, "mtime": 1_600_000_000 + i} for i in range(3000)]
    data = build_tar(entries)
    info = unpack_layer(io.BytesIO(data), tmp_path / "layers")
    assert b"".join(replay(info.path, info.diff_id)) == data
    assert int(os.stat(info.path / "diff/d02999").st_mtime) == 1_600_002_999


def test_spill_map_orders_like_path_components(tmp_path: Path):
    for limit in (0, 1000):
        m = spill.SpillMap(tmp_path, limit=limit)
        for i, p in enumerate(["a", "a/b", "a-c", "a/b/c", "", "b", "a/b"]):
            m[p] = i
        got = list(m.descending())
        assert got == [("b", 5), ("a-c", 2), ("a/b/c", 3), ("a/b", 6), ("a", 0), ("", 4)]
        assert m.get("a/b") == 6 and m.get("zz") is None and len(m) == 6
        m.close()


def test_extraction_digests_what_it_writes(tmp_path: Path):
    """The build context is hashed on the way in; a path replaced by a link or rewritten is up to date."""
    data = build_tar([
        {"name": "a", "data": b"first"},
        {"name": "b", "data": b"bee"},
        {"name": "dir", "type": tarfile.DIRTYPE},
        {"name": "dir/c", "data": b"x" * 300_000},
        {"name": "a", "data": b"second"},
        {"name": "b", "type": tarfile.SYMTYPE, "linkname": "a"},
    ])
    digests = ContentDigests()
    (tmp_path / "ctx").mkdir()
    extract_into(tmp_path / "ctx", io.BytesIO(data), "/", digests=digests)
    got = digests.close()
    assert got == {"a": hashlib.sha256(b"second").hexdigest(),
                   "dir/c": hashlib.sha256(b"x" * 300_000).hexdigest()}
