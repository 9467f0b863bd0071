"""From a user's -v / --mount / --tmpfs / image VOLUME to the mount points a container keeps.

Resolved once at create time into Docker's inspect "Mounts" entries (plus private keys), so inspect shows
them and every start builds the same OCI mounts.
"""

from __future__ import annotations

import os
from pathlib import Path

from nanovisor.engine.volumes import VolumeStore
from nanovisor.errors import InvalidParameter

_BIND_OPTS = {"ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "rshared", "slave", "rslave",
              "consistent", "cached", "delegated"}


def _parse_bind(spec: str) -> tuple[str, str, list[str]]:
    parts = spec.split(":")
    if len(parts) == 1:
        return "", parts[0], []
    if len(parts) == 2:
        return parts[0], parts[1], []
    if len(parts) == 3:
        return parts[0], parts[1], parts[2].split(",")
    raise InvalidParameter(f"invalid volume specification: '{spec}'")


def _check_dest(dest: str, spec: str) -> str:
    if not dest.startswith("/"):
        raise InvalidParameter(f"invalid volume specification: '{spec}': invalid mount config for type "
                               f'"bind": invalid mount path: \'{dest}\' mount path must be absolute')
    if os.path.normpath(dest) == "/":
        raise InvalidParameter(f"invalid volume specification: '{spec}': invalid mount config: "
                               "destination can't be '/'")
    return os.path.normpath(dest)


def resolve_mounts(host_config: dict, image_volumes: dict | None, volumes: VolumeStore) -> list[dict]:
    """Returns inspect-shaped mount points; creates named/anonymous volumes that do not exist yet."""
    points: dict[str, dict] = {}

    def volume_point(name: str, dest: str, rw: bool, nocopy: bool, spec: str, subpath: str = "") -> dict:
        info = volumes.create(name or None)
        point = {"Type": "volume", "Name": info["Name"], "Source": info["Mountpoint"], "Destination": dest,
                 "Driver": "local", "Mode": "", "RW": rw, "Propagation": "", "_Anonymous": not name,
                 "_CopyUp": not nocopy and not subpath}
        if subpath:
            point["_Subpath"] = _check_subpath(subpath)
        return point

    for spec in host_config.get("Binds") or []:
        src, dest, opts = _parse_bind(spec)
        dest = _check_dest(dest, spec)
        unknown = [o for o in opts if o not in _BIND_OPTS]
        if unknown:
            raise InvalidParameter(f"invalid mode: {','.join(unknown)}")
        rw = "ro" not in opts
        if src.startswith("/"):
            if not os.path.lexists(src):  # -v creates a missing host dir, as Docker does (a file binds as is)
                Path(src).mkdir(parents=True, exist_ok=True)
            points[dest] = {"Type": "bind", "Source": os.path.normpath(src), "Destination": dest,
                            "Mode": ",".join(o for o in opts if o not in ("ro", "rw")), "RW": rw,
                            "Propagation": next((o for o in opts if "private" in o or "shared" in o
                                                 or "slave" in o), "rprivate")}
        else:
            points[dest] = volume_point(src, dest, rw, "nocopy" in opts, spec)

    for m in host_config.get("Mounts") or []:
        kind = (m.get("Type") or "volume").lower()
        target = m.get("Target") or m.get("Destination") or ""
        dest = _check_dest(target, target)
        rw = not m.get("ReadOnly", False)
        if kind == "bind":
            src = m.get("Source") or ""
            if not src.startswith("/") or not os.path.exists(src):
                raise InvalidParameter(f"invalid mount config for type \"bind\": bind source path does not "
                                       f"exist: {src}")
            points[dest] = {"Type": "bind", "Source": os.path.normpath(src), "Destination": dest, "Mode": "",
                            "RW": rw, "Propagation": (m.get("BindOptions") or {}).get("Propagation")
                            or "rprivate"}
        elif kind == "volume":
            vopts = m.get("VolumeOptions") or {}
            points[dest] = volume_point(m.get("Source") or "", dest, rw, bool(vopts.get("NoCopy")), target,
                                        vopts.get("Subpath") or "")
        elif kind == "tmpfs":
            opts = m.get("TmpfsOptions") or {}
            points[dest] = {"Type": "tmpfs", "Source": "", "Destination": dest, "Mode": "", "RW": rw,
                            "Propagation": "", "_Size": opts.get("SizeBytes") or 0,
                            "_FileMode": opts.get("Mode") or 0}
        else:
            raise InvalidParameter(f"mount type unknown: {kind}")

    for dest in sorted(image_volumes or {}):
        dest = os.path.normpath(dest)
        if dest not in points and dest not in (host_config.get("Tmpfs") or {}):
            points[dest] = volume_point("", dest, True, False, dest)
    return list(points.values())


def _check_subpath(subpath: str) -> str:
    """VolumeOptions.Subpath (API 1.45): relative, and never leaving the volume by '..'."""
    clean = os.path.normpath(subpath)
    if os.path.isabs(subpath) or clean == ".." or clean.startswith("../"):
        raise InvalidParameter(f"invalid mount config: subpath must be a relative path within the volume: "
                               f"{subpath}")
    return clean


def public(points: list[dict]) -> list[dict]:
    return [{k: v for k, v in p.items() if not k.startswith("_")} for p in points]
