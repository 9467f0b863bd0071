"""resolve_user against a real rootfs directory: Docker's (runc's) rules for -u and --group-add."""

from __future__ import annotations

import os

import pytest

from nanovisor.errors import InvalidParameter
from nanovisor.runtime.users import resolve_user, scoped_path

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
alice:x:1000:1000:alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
"""
GROUP = """root:x:0:
users:x:100:
staff:x:50:alice,bob
alice:x:1000:
audio:x:29:alice
nogroup:x:65534:
"""


@pytest.fixture
def rootfs(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)
    return str(tmp_path)


def test_empty_user_is_root(rootfs):
    assert resolve_user(rootfs, "") == (0, 0, [0])


def test_name_gets_primary_and_supplementary_groups(rootfs):
    assert resolve_user(rootfs, "alice") == (1000, 1000, [1000, 50, 29])


def test_uid_with_passwd_entry_is_looked_up(rootfs):
    assert resolve_user(rootfs, "1001") == (1001, 100, [100, 50])


def test_numeric_uid_without_entry_keeps_gid_zero(rootfs):
    assert resolve_user(rootfs, "4242") == (4242, 0, [0])


def test_user_colon_group_by_name_and_number(rootfs):
    assert resolve_user(rootfs, "alice:staff") == (1000, 50, [50])
    assert resolve_user(rootfs, "1000:29") == (1000, 29, [29])
    assert resolve_user(rootfs, "nobody:7777") == (65534, 7777, [7777])


def test_explicit_group_drops_supplementary_groups(rootfs):
    uid, gid, gids = resolve_user(rootfs, "alice:alice")
    assert (uid, gid, gids) == (1000, 1000, [1000])


def test_unknown_user_is_docker_error(rootfs):
    with pytest.raises(InvalidParameter) as e:
        resolve_user(rootfs, "mallory")
    assert str(e.value) == "unable to find user mallory: no matching entries in passwd file"


def test_unknown_group_is_docker_error(rootfs):
    with pytest.raises(InvalidParameter) as e:
        resolve_user(rootfs, "alice:wheel")
    assert str(e.value) == "unable to find group wheel: no matching entries in group file"


def test_out_of_range_ids(rootfs):
    with pytest.raises(InvalidParameter, match="uids and gids must be in range 0-2147483647"):
        resolve_user(rootfs, "-5")
    with pytest.raises(InvalidParameter, match="uids and gids must be in range"):
        resolve_user(rootfs, "0:4294967296")


def test_group_add_by_name_and_number(rootfs):
    assert resolve_user(rootfs, "alice", ["users", "777", "staff"]) == (1000, 1000, [1000, 50, 29, 100, 777])


def test_group_add_unknown_name(rootfs):
    with pytest.raises(InvalidParameter) as e:
        resolve_user(rootfs, "", ["wheel"])
    assert str(e.value) == "Unable to find group wheel: no matching entries in group file"


def test_no_passwd_file(tmp_path):
    assert resolve_user(str(tmp_path), "") == (0, 0, [0])
    assert resolve_user(str(tmp_path), "123:456") == (123, 456, [456])
    with pytest.raises(InvalidParameter, match="unable to find user alice"):
        resolve_user(str(tmp_path), "alice")


def test_blank_and_malformed_lines_are_tolerated(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("\n  \nbroken\ncarol:x:2000:2000::/:/bin/sh\n")
    assert resolve_user(str(tmp_path), "carol") == (2000, 2000, [2000])


def test_absolute_symlink_stays_inside_rootfs(tmp_path):
    """An image whose /etc/passwd points at /etc/shadow-like host files must read its own copy."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "passwd").write_text("eve:x:3000:3000::/:/bin/sh\n")
    os.symlink("/data/passwd", root / "etc" / "passwd")
    assert resolve_user(str(root), "eve") == (3000, 3000, [3000])


def test_dotdot_symlink_cannot_escape(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("host:x:4000:4000::/:/bin/sh\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("../../../../outside/passwd", root / "etc" / "passwd")
    assert scoped_path(str(root), "/etc/passwd") == str(root / "outside" / "passwd")
    with pytest.raises(InvalidParameter, match="unable to find user host"):
        resolve_user(str(root), "host")


def test_symlink_loop_is_an_error_not_a_hang(tmp_path):
    (tmp_path / "etc").mkdir()
    os.symlink("/etc/passwd", tmp_path / "etc" / "passwd")
    with pytest.raises(InvalidParameter, match="too many symlinks"):
        resolve_user(str(tmp_path), "x")
