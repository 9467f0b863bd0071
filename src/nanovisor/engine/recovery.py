"""What `serve` does when it starts: networks back, the root reconciled after a crash (engine/reconcile.py),
running containers watched again, exits that happened while nobody watched recorded, and containers whose
restart policy says so started again (after a reboot their monitors are gone)."""

from __future__ import annotations

import logging

from nanovisor.engine.reconcile import reconcile_root
from nanovisor.engine.state import Op, State

log = logging.getLogger("nanovisor.engine")


def recover(engine) -> None:
    if engine.network is not None:
        try:
            engine.network.restore()
        except Exception as e:  # a network that cannot be restored must not keep the API down
            log.warning("network restore: %s", e)
    reconcile_root(engine)  # store, runtime, mounts, processes and scratch agree again
    lifecycle = engine.lifecycle
    for c in engine.containers.list():
        policy = (c.host_config.get("RestartPolicy") or {}).get("Name") or "no"
        if c.running and lifecycle.monitor(c).alive():
            engine.watch(c)
            continue
        fresh = lifecycle.reconcile(c)
        if fresh is None:
            continue
        stuck = fresh.status is State.RESTARTING  # its pending restart died with the last serve
        wants = policy in ("always", "unless-stopped") and fresh.status is State.EXITED \
            and not fresh.state.get("_ManualStop") and fresh.state.get("_StartSeq", 0) > 0
        if stuck or wants:
            try:
                lifecycle.start(fresh, op=Op.RESPAWN if stuck else Op.START)
            except Exception as e:
                log.warning("restart %s: %s", fresh.id[:12], e)
