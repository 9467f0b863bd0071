"""`docker update`: change a container's resource limits and restart policy, live where it runs.

The new HostConfig is validated whole, as at create; a running container gets the new OCI resources through its
runtime's `update` (runc writes the cgroup), and the stored HostConfig makes them hold at the next start too.
A runtime that cannot change a running container (a VM's memory is fixed at boot) answers a clear 400 and nothing
is saved, so what inspect shows is always what applies.
"""

from __future__ import annotations

from nanovisor.engine.state import Op
from nanovisor.errors import InvalidParameter, NanovisorError

RESOURCE_KEYS = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
                 "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight", "OomKillDisable")
UPDATABLE = (*RESOURCE_KEYS, "RestartPolicy")
_INT_KEYS = {"Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
             "PidsLimit", "BlkioWeight"}


def merged_host_config(current: dict, body: dict) -> tuple[dict, list[str]]:
    """(new HostConfig, the resource keys that change). Raises InvalidParameter with moby's wording."""
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: expected an object")
    changes = {k: body[k] for k in UPDATABLE if k in body and body[k] is not None}
    for key in _INT_KEYS & changes.keys():
        if isinstance(changes[key], bool) or not isinstance(changes[key], int):
            raise InvalidParameter(f"invalid value for {key}: {changes[key]!r} is not an integer")
    # zero means "leave as is" for limits, as the docker CLI sends every field
    changes = {k: v for k, v in changes.items() if k == "RestartPolicy" or k == "OomKillDisable" or v != 0}
    if "RestartPolicy" in changes:
        if not (changes["RestartPolicy"] or {}).get("Name"):
            del changes["RestartPolicy"]
        elif current.get("AutoRemove") and changes["RestartPolicy"].get("Name") not in ("", "no"):
            raise InvalidParameter("Restart policy cannot be updated because AutoRemove is enabled for the container")
    if changes.get("NanoCpus") and (changes.get("CpuPeriod") or changes.get("CpuQuota")):
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    memory, swap = changes.get("Memory"), changes.get("MemorySwap")
    old_swap = current.get("MemorySwap") or 0
    if memory and not swap and old_swap > 0 and memory > old_swap:
        raise InvalidParameter("Memory limit should be smaller than already set memoryswap limit, update the "
                               "memoryswap at the same time")
    if memory and not swap and not old_swap and current.get("Memory"):
        changes["MemorySwap"] = 2 * memory  # the default swap follows the new limit, as at create
    new = {**current, **changes}
    if changes.get("NanoCpus"):
        new["CpuPeriod"], new["CpuQuota"] = 0, 0
    if changes.get("CpuPeriod") or changes.get("CpuQuota"):
        new["NanoCpus"] = 0
    from nanovisor.runtime.spec_resources import validate_host_config

    validate_host_config(new)
    return new, [k for k in RESOURCE_KEYS if k in changes]


def apply(runtime, cid: str, host_config: dict) -> None:
    """The running container's cgroup (or VM) takes the new limits now."""
    from nanovisor.runtime.spec_resources import resources

    try:
        runtime.update(cid, resources(host_config))
    except NanovisorError as e:
        raise InvalidParameter(f"Cannot update container {cid}: {e}") from None


def update_container(lifecycle, ref: str, body: dict) -> dict:
    """POST /containers/{id}/update: under the container's lock, so a concurrent start sees old or new, whole."""
    with lifecycle.locked(ref) as c:
        lifecycle.check(c, Op.UPDATE)
        new, changed = merged_host_config(c.host_config, body)
        if changed and c.running:
            apply(lifecycle.runtimes.get(c.runtime), c.id, new)
        c.spec["HostConfig"] = new
        lifecycle.containers.save_spec(c)
    lifecycle.event(c, "update")
    return {"Warnings": []}
