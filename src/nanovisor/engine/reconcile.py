"""Crash consistency: after an engine process died (serve killed with SIGKILL, a CLI killed midway, a reboot),
bring the store, the runtime, the mounts, the processes and the scratch space of a root back in line.

Who runs it: `serve` on every start (engine/recovery.py), and the embedded CLI on its first use of a root when
`register` finds that a previous user of the root's /run state died without unregistering, or that the /run
state is new (a reboot). `register` costs one small file and one directory listing, so `ps` stays fast.

What it decides, per class of leftover:
- A runtime container (runc/VM `state` exists) whose record is not running or paused: the start that made it
  was cut short before the record said so (or a stop/removal was). It is killed and deleted, never adopted:
  the start did not finish its work (attach hooks, network plumbing, the saved Pid and monitor), so nothing
  could vouch for it; containerd deletes tasks whose shim died with the same reasoning, and dockerd (without
  live-restore) shuts down every task it finds alive. The record then reads as a failed start does in moby
  (Created, `Error` set, ExitCode 255), so `docker start` works and no restart policy fires for a container
  that never ran.
- A record running or paused whose monitor is gone: reaped (exit code from conmon's file, else 255), as every
  read already does. One whose runtime state says paused/running the other way round: the record takes the
  runtime's word (a pause or unpause was cut short after the runtime did it).
- A record left `removing` by a removal that died midway: `dead` (what `locked()` reads it as), which
  `docker rm` removes again.
- A runtime container, bundle, conmon or netns for an id the store does not know (a removal cut short):
  deleted/killed.
- A container's rootfs mount (containers/<id>/merged) while the container is not running: unmounted; mounts
  for ids the store does not know too.
- Scratch work (tmp/<pid>-<start>/: build contexts, spooled uploads, build-step overlays, layers being
  unpacked) of a process that is gone: unmounted and removed. Layers are unpacked there and renamed into
  layers/, so no half layer is ever under layers/; `.unpack-*` and `.gc-*` left there by older code go too,
  and so does a whole layer whose row was never written (killed between the rename and the insert).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import time
from pathlib import Path

from nanovisor.engine.state import Op, State
from nanovisor.errors import NanovisorError
from nanovisor.paths import Paths, process_tag
from nanovisor.rmtree import remove_tree
from nanovisor.runtime import procs
from nanovisor.snapshots.overlay import unmount

INTERRUPTED = "the engine stopped before this start finished: the container was stopped (start it again)"
_ALIVE = (State.RUNNING, State.PAUSED)
log = logging.getLogger("nanovisor.engine")
_registered: set[Path] = set()


# owners: who uses a root's /run state -----------------------------------------------------------------
def owners_dir(paths: Paths) -> Path:
    return paths.run / "owners"


def _tag_alive(tag: str) -> bool:
    pid, _, start = tag.partition("-")
    if not pid.isdigit() or not start.isdigit():
        return False
    return procs.alive(int(pid), int(start))


def dead_owners(paths: Paths) -> list[Path]:
    try:
        entries = list(os.scandir(owners_dir(paths)))
    except FileNotFoundError:
        return []
    return [Path(e.path) for e in entries if not _tag_alive(e.name)]


def register(paths: Paths) -> bool:
    """Marks this process as a user of the root (unmarked at exit); True if the root needs recovery: a
    previous user died without unmarking itself, or the /run state is new (never recovered since boot)."""
    d = owners_dir(paths)
    me = d / process_tag()
    needs = bool(dead_owners(paths)) or not (paths.run / "recovered").exists()
    if me not in _registered:
        d.mkdir(parents=True, exist_ok=True)
        me.touch()
        _registered.add(me)
        if len(_registered) == 1:
            atexit.register(_unregister, os.getpid())
    return needs


def _unregister(pid: int) -> None:
    if pid != os.getpid():
        return
    for me in _registered:
        me.unlink(missing_ok=True)


# the reconciliation -----------------------------------------------------------------------------------
def reconcile_root(engine) -> None:
    """Reconciles the root of engine (see the module docstring). Safe while other engine processes use the
    root: per-container work happens under the container's lock, and only dead processes' scratch dirs go."""
    paths: Paths = engine.paths
    stale = dead_owners(paths)
    clean_scratch(paths)
    known: dict[str, object] = {}
    for c in engine.containers.list():
        try:
            fresh = _reconcile_container(engine, c)
        except NanovisorError as e:
            log.warning("recover %s: %s", c.id[:12], e)
            fresh = c
        if fresh is not None:
            known[fresh.id] = fresh
    _remove_unknown(engine, set(known))
    _kill_orphan_monitors(engine)
    _unmount_stopped(engine)
    _remove_unrecorded_layers(engine)
    for p in stale:
        p.unlink(missing_ok=True)
    (paths.run / "recovered").touch()


def _note(what: str) -> None:
    """What recovery changed: info in serve's log, as dockerd logs its restore (the CLI shows warnings only)."""
    log.info("recover: %s", what)


def _runtime_has(runtime, cid: str) -> bool:
    return runtime.exists(cid)


def _reconcile_container(engine, c):
    """One record against the runtime, under its lock; returns the record as it is now (None if gone)."""
    lc = engine.lifecycle
    with lc.locked(c, missing_ok=True) as fresh:  # reaps a running record whose monitor is gone
        if fresh is None:
            return None
        if fresh.status is State.DEAD and c.status is State.REMOVING:  # a removal that died midway
            engine.containers.save_state(fresh)  # locked() reads it as dead: stored so, every read says so
            _note(f"{fresh.id[:12]}: removal died midway: dead")
        runtime = lc.runtimes.get(fresh.runtime)
        if fresh.status in _ALIVE:
            st = (runtime.state(fresh.id) or {}).get("status")
            want = {"paused": State.PAUSED, "running": State.RUNNING}.get(st or "")
            if want is not None and want is not fresh.status:
                _note(f"{fresh.id[:12]} recorded {fresh.status.value}, the runtime has it {want.value}")
                fresh.set_status(want)
                engine.containers.save_state(fresh)
            return fresh
        if not _runtime_has(runtime, fresh.id):
            if (lc.paths.netns / fresh.id).exists() or lc.paths.bundle_dir(fresh.id).exists():
                _note(f"{fresh.id[:12]} is {fresh.status.value}: its network namespace and bundle removed")
                lc._teardown(fresh)  # a start cut short before the runtime's create
            return fresh
        _note(f"{fresh.id[:12]} is {fresh.status.value} but its runtime container exists: killed, deleted")
        _kill_runtime_container(lc, runtime, fresh.id)
        if fresh.status is State.CREATED:
            fresh.state.update(Error=INTERRUPTED, ExitCode=255, Pid=0, _MonitorPid=0)
            fresh.set_status(lc.check(fresh, Op.START_FAILED))
            engine.containers.save_state(fresh)
        lc._teardown(fresh)
        return fresh


def _kill_runtime_container(lc, runtime, cid: str) -> None:
    """Kills and deletes a runtime container and its monitor; waits for the monitor's exit (its late exit
    file must not end a later run)."""
    monitor = _monitor_pid(lc.paths, cid)
    try:
        runtime.delete(cid, force=True)
    except NanovisorError as e:
        log.warning("recover: delete %s: %s", cid[:12], e)
    if monitor:
        procs.wait_exit(monitor, 0, 5)
        _kill(monitor)


def _monitor_pid(paths: Paths, cid: str) -> int:
    try:
        return int((paths.bundle_dir(cid) / "conmon.pid").read_text().strip())
    except (OSError, ValueError):
        return 0


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _remove_unknown(engine, known: set[str]) -> None:
    """Runtime containers, bundles and netns of ids the store does not know (a removal cut short)."""
    lc = engine.lifecycle
    paths: Paths = engine.paths
    ids: set[str] = set()
    for runtime in lc.runtimes.runtimes.values():
        ids.update(_ids_in(runtime.state_root))
    ids.update(_ids_in(paths.run_containers))
    ids.update(_ids_in(paths.containers))
    for cid in ids - known:
        with lc.locks.hold(cid):
            if _exists(engine, cid):
                continue  # created meanwhile by another process
            _note(f"{cid[:12]}: not in the store: its runtime container, monitor, mount and files removed")
            for runtime in lc.runtimes.runtimes.values():
                if _runtime_has(runtime, cid):
                    _kill_runtime_container(lc, runtime, cid)
            if engine.network is not None:
                try:
                    engine.network.delete_netns(cid)
                except NanovisorError:
                    pass
            remove_tree(paths.bundle_dir(cid), ignore_errors=True)
            (paths.exits / cid).unlink(missing_ok=True)
            merged = paths.container_dir(cid) / "merged"
            if merged.exists():
                unmount(merged)
            remove_tree(paths.container_dir(cid), ignore_errors=True)


def _exists(engine, cid: str) -> bool:
    try:
        return engine.containers.get(cid).id == cid
    except NanovisorError:
        return False


def _ids_in(d: Path) -> set[str]:
    try:
        return {e.name for e in os.scandir(d) if len(e.name) == 64 and e.is_dir(follow_symlinks=False)}
    except FileNotFoundError:
        return set()


def monitors_of(paths: Paths) -> dict[int, str]:
    """conmon processes of this root (their bundle is under its /run state): pid → container id."""
    prefix = str(paths.run_containers) + "/"
    out: dict[int, str] = {}
    for e in os.scandir("/proc"):
        if not e.name.isdigit():
            continue
        try:
            with open(f"/proc/{e.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"conmon"):
            continue
        for i, a in enumerate(argv[:-1]):
            if a == b"-b" and argv[i + 1].decode(errors="replace").startswith(prefix):
                out[int(e.name)] = argv[i + 1].decode(errors="replace")[len(prefix):].split("/")[0]
    return out


def _kill_orphan_monitors(engine) -> None:
    """A conmon whose container the store does not have as running or paused is killed."""
    lc = engine.lifecycle
    for pid, cid in monitors_of(engine.paths).items():
        with lc.locks.hold(cid):
            try:
                c = engine.containers.get(cid)
            except NanovisorError:
                c = None
            if c is not None and c.id == cid and c.status in _ALIVE:
                continue
            _note(f"{cid[:12]}: orphan monitor {pid} killed")
            _kill(pid)


def _unmount_stopped(engine) -> None:
    """The rootfs of a container that is not running is not left mounted."""
    lc = engine.lifecycle
    prefix = str(engine.paths.containers) + "/"
    for target in mount_points_under(engine.paths.containers):
        rest = target[len(prefix):].split("/")
        if len(rest) != 2 or rest[1] != "merged":
            continue
        cid = rest[0]
        with lc.locks.hold(cid):
            try:
                c = engine.containers.get(cid)
                running = c.id == cid and c.status in _ALIVE
            except NanovisorError:
                running = False
            if not running:
                _note(f"{cid[:12]}: not running: rootfs unmounted")
                unmount(target)


def _remove_unrecorded_layers(engine, grace: float = 60.0) -> None:
    """A layer renamed into layers/ whose row was never written (the process died between the two) is
    unreachable: removed once it is older than grace (a live process writes its row right after the rename)."""
    layers: Path = engine.paths.layers
    now = time.time()
    try:
        entries = [e for e in os.scandir(layers) if len(e.name) == 64 and not e.name.startswith(".")]
    except FileNotFoundError:
        return
    for e in entries:
        try:
            if now - e.stat(follow_symlinks=False).st_mtime < grace:
                continue
        except FileNotFoundError:
            continue
        if engine.images.has_layer("sha256:" + e.name):
            continue
        trash = layers / f".gc-{e.name}-{os.getpid()}"
        try:
            os.rename(e.path, trash)
        except OSError:
            continue
        _note(f"layers/{e.name[:12]}: no record of it: removed")
        remove_tree(trash, ignore_errors=True)


def mount_points_under(d: Path) -> list[str]:
    prefix = os.path.realpath(d) + "/"
    with open("/proc/self/mountinfo", "rb") as f:
        points = [line.split(b" ", 5)[4].decode(errors="replace") for line in f]
    return [p for p in points if p.startswith(prefix)]


def clean_scratch(paths: Paths) -> int:
    """Removes the scratch dirs of processes that are gone (after unmounting what is mounted in them) and
    what older code left in layers/; returns the bytes reclaimed."""
    removed = 0
    try:
        entries = list(os.scandir(paths.tmp_root))
    except FileNotFoundError:
        entries = []
    for e in entries:
        if e.is_dir(follow_symlinks=False) and "-" in e.name and e.name.split("-")[0].isdigit():
            if _tag_alive(e.name):
                continue
        elif e.name.endswith(".partial"):
            continue  # older code's shared partial downloads: a pull resumes from them
        removed += _remove_tree(Path(e.path))
        _note(f"scratch {e.name} of a process that is gone: removed")
    try:
        leftovers = [Path(e.path) for e in os.scandir(paths.layers)
                     if e.name.startswith((".unpack-", ".gc-"))]
    except FileNotFoundError:
        leftovers = []
    for p in leftovers:
        removed += _remove_tree(p)
        _note(f"layers/{p.name}: removed")
    return removed


def _remove_tree(path: Path) -> int:
    """Removes path (unmounting what is mounted below it first); the bytes it held."""
    for m in sorted(mount_points_under(path), key=len, reverse=True):
        unmount(m)
    if mount_points_under(path):
        return 0  # never delete through a mount
    if not path.is_dir() or path.is_symlink():
        size = path.lstat().st_size if path.exists() or path.is_symlink() else 0
        path.unlink(missing_ok=True)
        return size
    size = _tree_size(path)
    remove_tree(path)
    return size


def _tree_size(path: Path) -> int:
    """Bytes of the files below path; iterative (a tree may be deeper than Python's recursion limit)."""
    size, stack = 0, [str(path)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    size += e.stat(follow_symlinks=False).st_size
            except OSError:
                pass
    return size
