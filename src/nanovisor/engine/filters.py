"""`--filter` for containers as Docker evaluates them (id, name, label, status, exited, ancestor, before,
since, volume, network, isolation, is-task)."""

from __future__ import annotations

import json
import re

from nanovisor.engine.containers import Container
from nanovisor.errors import InvalidParameter

_KNOWN = {"id", "name", "label", "status", "exited", "ancestor", "before", "since", "volume", "network",
          "isolation", "health", "is-task", "expose", "publish"}
_STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}


def parse_filters(raw: str | dict | None) -> dict[str, list[str]]:
    """The API's filters JSON: {"key": ["v"]} or the old {"key": {"v": true}}."""
    if not raw:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidParameter(f"invalid filter '{raw}'") from None
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid filter: expected an object")
    out: dict[str, list[str]] = {}
    for key, values in raw.items():
        out[key] = list(values.keys()) if isinstance(values, dict) else list(values)
    return out


def match_labels(labels: dict, wanted: list[str]) -> bool:
    for w in wanted:
        key, eq, value = w.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def container_matcher(filters: dict[str, list[str]], resolve, image_ids, isolation_of) -> callable:
    """resolve(ref) → Container|None for before/since; image_ids(ref) → set of ids for ancestor;
    isolation_of(runtime name) → its isolation, as the runtime registry says (filter isolation=)."""
    for key in filters:
        if key not in _KNOWN:
            raise InvalidParameter(f"invalid filter '{key}'")
    for s in filters.get("status", []):
        if s not in _STATUSES:
            raise InvalidParameter(f"invalid filter 'status={s}'")
    for h in filters.get("health", []):
        if h not in ("starting", "healthy", "unhealthy", "none"):
            raise InvalidParameter(f"Unrecognised filter value for health: {h}")
    before = [resolve(r) for r in filters.get("before", [])]
    since = [resolve(r) for r in filters.get("since", [])]
    ancestors: set[str] = set()
    for ref in filters.get("ancestor", []):
        ancestors |= image_ids(ref)

    def match(c: Container) -> bool:
        if "id" in filters and not any(c.id.startswith(v) for v in filters["id"]):
            return False
        if "name" in filters and not any(re.search(v.lstrip("/"), c.name) for v in filters["name"]):
            return False
        if "label" in filters and not match_labels(c.config.get("Labels") or {}, filters["label"]):
            return False
        if "status" in filters and c.state["Status"] not in filters["status"]:
            return False
        if "exited" in filters and (c.state["Status"] != "exited"
                                    or str(c.state["ExitCode"]) not in filters["exited"]):
            return False
        if "ancestor" in filters and c.image_id not in ancestors:
            return False
        if any(b is not None and c.created >= b.created for b in before):
            return False
        if any(s is not None and c.created <= s.created for s in since):
            return False
        if "volume" in filters:
            names = {p.get("Name") for p in c.spec.get("MountPoints") or []} | \
                    {p.get("Destination") for p in c.spec.get("MountPoints") or []}
            if not names & set(filters["volume"]):
                return False
        if "network" in filters and (c.host_config.get("NetworkMode") or "bridge") not in filters["network"]:
            nets = set((c.spec.get("NetworkSettings") or {}).get("Networks", {}))
            if not nets & set(filters["network"]):
                return False
        if "health" in filters:
            from nanovisor.engine.health import NONE
            from nanovisor.engine.views import current_health

            health = current_health(c)
            if (health or {}).get("Status", NONE) not in filters["health"]:
                return False
        if "isolation" in filters:
            iso = isolation_of(c.runtime)
            if iso not in filters["isolation"] and (c.host_config.get("Isolation") or "default") \
                    not in filters["isolation"]:
                return False
        return True

    return match
