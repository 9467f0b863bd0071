"""Resolve a Docker `--user` spec against the container's own /etc/passwd and /etc/group.

Follows runc's libcontainer/user rules (what Docker uses), so names, numeric ids, "user:group" and
supplementary groups behave and fail exactly as they do under Docker. Files are looked up inside the rootfs
with symlinks resolved *within* it: a hostile image cannot make us read the host's /etc/shadow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from nanovisor.errors import InvalidParameter

MIN_ID = 0
MAX_ID = (1 << 31) - 1
NO_PASSWD = "no matching entries in passwd file"
NO_GROUP = "no matching entries in group file"
RANGE_ERROR = f"uids and gids must be in range {MIN_ID}-{MAX_ID}"
_MAX_LINKS = 255


@dataclass
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass
class GroupEntry:
    name: str
    gid: int
    members: list[str]


def scoped_path(root: str, path: str) -> str:
    """The host path of `path` inside `root`, resolving symlinks as if root were "/".

    Like moby's FollowSymlinkInScope / securejoin: ".." and absolute link targets never leave root.
    """
    root = os.path.realpath(root)
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            links += 1
            if links > _MAX_LINKS:
                raise InvalidParameter(f"too many symlinks resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _read_lines(rootfs: str, path: str) -> list[str] | None:
    """Lines of a file inside rootfs, or None when it does not exist (runc treats that as "no file")."""
    host = scoped_path(rootfs, path)
    try:
        with open(host, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _atoi(text: str) -> int:
    """Go's strconv.Atoi with the error ignored, as runc's parser does for malformed fields."""
    try:
        return int(text, 10)
    except ValueError:
        return 0


def _fields(line: str, n: int) -> list[str]:
    parts = line.split(":")
    return (parts + [""] * n)[:n]


def parse_passwd(lines: Iterable[str]) -> list[PasswdEntry]:
    out = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        name, _pw, uid, gid, _gecos, home, _shell = _fields(line, 7)
        out.append(PasswdEntry(name, _atoi(uid), _atoi(gid), home))
    return out


def parse_group(lines: Iterable[str]) -> list[GroupEntry]:
    out = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        name, _pw, gid, members = _fields(line, 4)
        out.append(GroupEntry(name, _atoi(gid), [m for m in members.split(",") if m]))
    return out


def _numeric(text: str) -> int | None:
    """An id given as digits (Go's Atoi also accepts a sign: "-1" is numeric and then out of range)."""
    try:
        return int(text, 10) if text and text.strip() == text else None
    except ValueError:
        return None


def _check_range(value: int) -> int:
    if value < MIN_ID or value > MAX_ID:
        raise InvalidParameter(RANGE_ERROR)
    return value


def _exec_user(passwd: list[PasswdEntry] | None, groups: list[GroupEntry] | None,
               spec: str) -> tuple[int, int, list[int]]:
    user_arg, _, group_arg = spec.partition(":")
    uid_num, gid_num = _numeric(user_arg), _numeric(group_arg)
    uid, gid, sgids = 0, 0, []

    if user_arg == "":
        matches = [u for u in passwd or [] if u.uid == uid]
    elif uid_num is not None:
        matches = [u for u in passwd or [] if u.uid == uid_num]
    else:
        matches = [u for u in passwd or [] if u.name == user_arg]
    matched_name = ""
    if matches:
        matched_name, uid, gid = matches[0].name, matches[0].uid, matches[0].gid
    elif user_arg != "":
        if uid_num is None:
            raise InvalidParameter(f"unable to find user {user_arg}: {NO_PASSWD}")
        uid = _check_range(uid_num)

    if group_arg != "" or matched_name != "":
        if group_arg == "":
            found = [g for g in groups or [] if matched_name in g.members]
        elif gid_num is not None:
            found = [g for g in groups or [] if g.gid == gid_num]
        else:
            found = [g for g in groups or [] if g.name == group_arg]
        if group_arg != "":
            if found:
                gid = found[0].gid
            elif gid_num is None:
                raise InvalidParameter(f"unable to find group {group_arg}: {NO_GROUP}")
            else:
                gid = _check_range(gid_num)
        else:
            sgids = [g.gid for g in found]
    return uid, gid, sgids


def additional_groups(groups: list[GroupEntry] | None, wanted: Iterable[str]) -> list[int]:
    """HostConfig.GroupAdd: names or gids; a name must exist in the container's /etc/group."""
    out: list[int] = []
    for ag in wanted:
        match = next((g for g in groups or [] if g.name == ag or str(g.gid) == ag), None)
        if match is not None:
            gid = match.gid
        else:
            num = _numeric(ag)
            if num is None:
                raise InvalidParameter(f"Unable to find group {ag}: {NO_GROUP}")
            gid = _check_range(num)
        if gid not in out:
            out.append(gid)
    return out


def resolve_user(rootfs: str, user: str, group_add: Iterable[str] = ()) -> tuple[int, int, list[int]]:
    """uid, gid and additional gids (primary gid first, as Docker puts it in the OCI spec) for `user`.

    "" means root (uid 0 and its passwd gid), "name", "uid", "name:group", "uid:gid" as in `docker run -u`.
    """
    lines = _read_lines(rootfs, "/etc/passwd")
    passwd = parse_passwd(lines) if lines is not None else None
    glines = _read_lines(rootfs, "/etc/group")
    groups = parse_group(glines) if glines is not None else None
    uid, gid, sgids = _exec_user(passwd, groups, user or "")
    extra = additional_groups(groups, list(group_add)) if group_add else []
    additional: list[int] = []
    for g in [gid, *sgids, *extra]:
        if g not in additional:
            additional.append(g)
    return uid, gid, additional

