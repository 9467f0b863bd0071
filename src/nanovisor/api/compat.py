"""Answers shaped for the API version a client asked for (moby's `versions.LessThan` branches in its routers).

The engine renders the newest shape once; these functions add back or take out what older versions had, so
clients pinned to an old version (docker-compose 1.29 sends 1.38 for version-3 files, docker-py <6 1.35) see what
dockerd shows them. Only differences a client can notice are kept here, each with the version it changed in.
"""

from __future__ import annotations

from nanovisor.api.router import version_at_least

_PREDEFINED_NETWORKS = ("bridge", "host", "none", "default")


def container_inspect(doc: dict, version: str) -> dict:
    if not version_at_least(version, "1.45"):
        # before 1.45 the short ID and the hostname were listed as aliases on user-defined networks
        short_id, hostname = doc["Id"][:12], (doc.get("Config") or {}).get("Hostname") or ""
        for name, ep in ((doc.get("NetworkSettings") or {}).get("Networks") or {}).items():
            if name in _PREDEFINED_NETWORKS or not isinstance(ep, dict):
                continue
            aliases = list(ep.get("Aliases") or [])
            for alias in (short_id, hostname):
                if alias and alias not in aliases:
                    aliases.append(alias)
            ep["Aliases"] = aliases
    if not version_at_least(version, "1.48"):
        doc.pop("ImageManifestDescriptor", None)
    return doc


def image_inspect(doc: dict, version: str) -> dict:
    """doc carries Container and ContainerConfig (images.apiview renders them): kept before 1.45 only."""
    if not version_at_least(version, "1.44"):
        doc["VirtualSize"] = doc.get("Size", 0)
    if version_at_least(version, "1.45"):
        doc.pop("Container", None)
        doc.pop("ContainerConfig", None)
    if not version_at_least(version, "1.48"):
        doc.pop("Descriptor", None)
    return doc


def image_list(items: list[dict], version: str) -> list[dict]:
    if not version_at_least(version, "1.43"):
        for item in items:
            if not item.get("RepoTags") and not item.get("RepoDigests"):
                item["RepoTags"], item["RepoDigests"] = ["<none>:<none>"], ["<none>@<none>"]
    if not version_at_least(version, "1.44"):
        for item in items:
            item["VirtualSize"] = item.get("Size", 0)
    if not version_at_least(version, "1.48"):
        for item in items:
            item.pop("Descriptor", None)
    return items


def info(doc: dict, version: str) -> dict:
    if not version_at_least(version, "1.44"):
        doc["Runtimes"] = {name: {k: v for k, v in rt.items() if k != "status"}
                           for name, rt in (doc.get("Runtimes") or {}).items()}
    if not version_at_least(version, "1.46"):
        doc.pop("Containerd", None)
    return doc
