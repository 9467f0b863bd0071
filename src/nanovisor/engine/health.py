"""Healthchecks: the image's HEALTHCHECK or --health-* run inside the container, as dockerd runs them.

The long-lived engine (serve) runs one checker per running container that has a check, next to the thread that
watches its exit; `serve` restarting starts them again for every running container (recover → watch), so checks
survive a daemon restart. Without a daemon, `nanovisor container healthcheck CONTAINER` runs one check (podman's
`healthcheck run`). A check is an exec through the container's runtime, so it works the same in a VM container.

Result rules (moby's daemon/health.go): exit 0 → healthy and the failing streak resets; any other exit, or the
timeout, adds to the streak, and `Retries` failures in a row make the container unhealthy — except during the
start period, where a failure counts for nothing (and checks run every StartInterval when one is given). The
last 5 results are kept with up to 4 KiB of output each. State is written with one JSON update of the Health key,
so a check never overwrites a concurrent lifecycle change.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass

from nanovisor.engine.timefmt import rfc3339

log = logging.getLogger("nanovisor.health")

NS = 1_000_000_000
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096

STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"


@dataclass(frozen=True)
class HealthConfig:
    argv: list[str]           # what runs in the container
    interval: float
    timeout: float
    start_period: float
    start_interval: float
    retries: int


def health_config(config: dict) -> HealthConfig | None:
    """None when the container has no check (no Healthcheck, or Test NONE)."""
    hc = config.get("Healthcheck") or {}
    test = list(hc.get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        argv = ["/bin/sh", "-c", " ".join(test[1:])]
    elif test[0] == "CMD":
        argv = test[1:]
    else:  # docker-py and old clients may send the command itself
        argv = test
    if not argv:
        return None

    def seconds(key: str, default: float) -> float:
        value = hc.get(key) or 0
        return value / NS if value > 0 else default

    return HealthConfig(argv=argv, interval=seconds("Interval", DEFAULT_INTERVAL),
                        timeout=seconds("Timeout", DEFAULT_TIMEOUT), start_period=seconds("StartPeriod", 0.0),
                        start_interval=seconds("StartInterval", DEFAULT_START_INTERVAL),
                        retries=int(hc.get("Retries") or 0) or DEFAULT_RETRIES)


def initial_health() -> dict:
    return {"Status": STARTING, "FailingStreak": 0, "Log": []}


def status_suffix(state: dict) -> str:
    """`docker ps` STATUS: "Up 5 seconds (healthy)", "(health: starting)"."""
    health = state.get("Health") or {}
    status = health.get("Status")
    if not status or status == NONE:
        return ""
    return f" (health: {status})" if status == STARTING else f" ({status})"


def health_status(state: dict, has_check: bool) -> str:
    """The `health` filter's value of a container."""
    if not has_check:
        return NONE
    return (state.get("Health") or {}).get("Status") or STARTING


def probe(engine, c, cfg: HealthConfig) -> dict:
    """Runs the check once; returns its log entry (Start, End, ExitCode, Output)."""
    from nanovisor.runtime.spec import build_exec_process

    started = time.time()
    bundle = engine.paths.bundle_dir(c.id)
    try:
        spec = json.loads((bundle / "config.json").read_text())
    except (OSError, ValueError) as e:
        return _entry(started, -1, f"container not running: {e}")
    process = build_exec_process(spec, {"Cmd": cfg.argv, "Tty": False}, spec["root"]["path"])
    token = os.urandom(6).hex()
    process_file, pid_file = bundle / f"health-{token}.json", bundle / f"health-{token}.pid"
    process_file.write_text(json.dumps(process))
    runtime = engine.runtimes.get(c.runtime)
    argv = runtime.exec_command(c.id, process_file, False, False, None, pid_file)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=cfg.timeout)
        output = (done.stdout + done.stderr)[:MAX_OUTPUT].decode(errors="replace")
        return _entry(started, done.returncode, output)
    except subprocess.TimeoutExpired:
        _kill(pid_file)
        return _entry(started, -1, f"Health check exceeded timeout ({_duration(cfg.timeout)})")
    except OSError as e:
        return _entry(started, -1, str(e))
    finally:
        process_file.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)


def _kill(pid_file) -> None:
    """The timed-out check's process inside the container goes too (killing the runtime's exec is not enough)."""
    try:
        os.kill(int(pid_file.read_text().strip()), 9)
    except (OSError, ValueError):
        pass


def _entry(started: float, code: int, output: str) -> dict:
    return {"Start": rfc3339(started), "End": rfc3339(time.time()), "ExitCode": code, "Output": output}


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def apply_result(health: dict, entry: dict, cfg: HealthConfig, in_start_period: bool) -> dict:
    """The next Health after one result (pure: moby's handleProbeResult)."""
    health = {"Status": health.get("Status") or STARTING, "FailingStreak": health.get("FailingStreak", 0),
              "Log": list(health.get("Log") or [])}
    health["Log"] = (health["Log"] + [entry])[-MAX_LOG_ENTRIES:]
    if entry["ExitCode"] == 0:
        health["FailingStreak"] = 0
        health["Status"] = HEALTHY
    elif not in_start_period or health["Status"] != STARTING:
        health["FailingStreak"] += 1
        if health["FailingStreak"] >= cfg.retries:
            health["Status"] = UNHEALTHY
    return health


class HealthChecker:
    """One container's checks for one run of it (a start sequence); ends when that run ends."""

    def __init__(self, engine, c, cfg: HealthConfig) -> None:
        self.engine, self.cfg = engine, cfg
        self.cid, self.seq = c.id, c.state.get("_StartSeq", 0)
        self.started_at = c.state.get("StartedAt") or time.time()

    def start(self) -> None:
        threading.Thread(target=self._loop, name=f"health-{self.cid[:12]}", daemon=True).start()

    def _current(self):
        c = self.engine.containers.find(self.cid)
        if c is None or not c.running or c.state.get("_StartSeq", 0) != self.seq:
            return None
        return c

    def _loop(self) -> None:
        c = self._current()
        if c is None:
            return
        health = c.state.get("Health") or {}
        if health.get("_Seq") != self.seq:  # a new run: start over
            health = {**initial_health(), "_Seq": self.seq}
            self.engine.containers.save_health(self.cid, health)
        while True:
            in_start = time.time() - self.started_at < self.cfg.start_period
            wait = self.cfg.start_interval if in_start and health["Status"] == STARTING else self.cfg.interval
            time.sleep(wait)
            c = self._current()
            if c is None:
                return
            if c.state.get("Paused"):
                continue
            in_start = time.time() - self.started_at < self.cfg.start_period
            entry = probe(self.engine, c, self.cfg)
            c = self._current()
            if c is None:
                return
            before = health["Status"]
            health = {**apply_result(health, entry, self.cfg, in_start), "_Seq": self.seq}
            self.engine.containers.save_health(self.cid, health)
            if health["Status"] != before:
                self.engine.lifecycle.event(c, f"health_status: {health['Status']}")


def run_once(engine, c) -> dict:
    """One check now, recorded (the daemon-less CLI's way to move a container's health on)."""
    cfg = health_config(c.config)
    if cfg is None:
        from nanovisor.errors import Conflict

        raise Conflict(f"container {c.name} has no healthcheck configured")
    seq = c.state.get("_StartSeq", 0)
    health = c.state.get("Health") or {}
    if health.get("_Seq") != seq:
        health = {**initial_health(), "_Seq": seq}
    in_start = time.time() - (c.state.get("StartedAt") or time.time()) < cfg.start_period
    entry = probe(engine, c, cfg)
    health = {**apply_result(health, entry, cfg, in_start), "_Seq": seq}
    engine.containers.save_health(c.id, health)
    return health
