"""The container lifecycle: created → running ⇄ paused → exited (→ restarting → running) → removing → gone.

Which operation is allowed in which state, and what it leads to, is engine/state.py's one table: every
operation here reloads the container under its lock (`locked`), asks the table (`check`), does the work and
saves the new state in one write (`Container.set_status`, the only writer of `Status` and Docker's booleans).
Exits are noticed by whoever looks first — the daemon (pidfd on the monitor), a CLI waiting in the
foreground, conmon's exit command, or any read that finds the monitor gone — and reaping is idempotent, so any
of them may die without losing an exit code: conmon has already written it to a file.
"""

from __future__ import annotations

import logging
import shutil
import signal as signals
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nanovisor.bundle.bundle import BundleBuilder
from nanovisor.engine import logconfig
from nanovisor.engine.containers import Container, ContainerStore
from nanovisor.engine.events import EventLog
from nanovisor.engine.locks import ContainerLocks
from nanovisor.engine.state import Op, State, transition
from nanovisor.errors import InvalidParameter, NanovisorError, NotModified, no_such_container
from nanovisor.paths import Paths
from nanovisor.runtime import procs
from nanovisor.runtime.base import CreateOptions
from nanovisor.runtime.monitor import Monitor
from nanovisor.runtime.oci import start_exit_code
from nanovisor.runtime.registry import RuntimeRegistry
from nanovisor.snapshots.overlay import OverlaySnapshot

log = logging.getLogger("nanovisor.engine")

DEFAULT_STOP_TIMEOUT = 10


def parse_signal(sig: str | int | None, default: str = "SIGTERM") -> int:
    if sig is None or sig == "":
        sig = default
    if isinstance(sig, int) or str(sig).isdigit():
        num = int(sig)
        if not 0 < num < 65:
            raise InvalidParameter(f"Invalid signal: {sig}")
        return num
    name = str(sig).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signals.Signals, name))
    except AttributeError:
        raise InvalidParameter(f"Invalid signal: {sig}") from None


class Lifecycle:
    def __init__(self, paths: Paths, containers: ContainerStore, images, runtimes: RuntimeRegistry,
                 events: EventLog, network=None, persistent: bool = False) -> None:
        self.paths = paths
        self.containers = containers
        self.images = images
        self.runtimes = runtimes
        self.events = events
        self._network = network  # the manager, or a function that makes it on first use
        self.locks = ContainerLocks(paths.run / "locks")
        # persistent: this process outlives a container's exit (serve, conmon's exit command) and may carry
        # out restart policies; the embedded CLI leaves those to conmon's exit command.
        self.persistent = persistent
        self._created_hooks: dict[str, list[Callable[[Container], None]]] = {}
        self.remove_volume: Callable[[str], None] | None = None  # set by the engine (anonymous volumes on rm)
        # set by a persistent engine: called after every start, restart-policy restarts included, to watch
        # the new run (its exit, its healthcheck)
        self.on_started: Callable[[Container], None] | None = None
        self._hooks_guard = threading.Lock()
        self.bundles = BundleBuilder(paths, containers, runtimes, network=lambda: self.network)

    @property
    def network(self):
        if callable(self._network):
            self._network = self._network()
        return self._network

    # helpers ----------------------------------------------------------------------------------------
    def snapshot(self, c: Container) -> OverlaySnapshot:
        return OverlaySnapshot(self.paths.container_dir(c.id))

    def mount_rootfs(self, c: Container) -> Path:
        image = self.images.get(c.image_id) if hasattr(self.images, "get") else self.images.resolve(c.image_id)
        snap = self.snapshot(c)
        snap.prepare()
        return snap.mount(self.images.layer_dirs(image))

    def monitor(self, c: Container) -> Monitor:
        """The container's conmon, as its last start recorded it."""
        return Monitor(c.id, self.paths.bundle_dir(c.id), self.paths.exits, c.state.get("_MonitorPid", 0),
                       c.state.get("_MonitorStart", 0))

    def event(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"name": c.name, "image": c.spec.get("ImageRef") or c.image_id}
        attrs.update(c.config.get("Labels") or {})
        attrs.update(extra)
        self.events.emit("container", action, c.id, attrs)

    def on_created(self, cid: str, hook: Callable[[Container], None]) -> Callable[[], None]:
        """Runs hook after the runtime created the container and before its process runs (attach uses
        this to miss no output). Returns a function that cancels it."""
        with self._hooks_guard:
            self._created_hooks.setdefault(cid, []).append(hook)

        def cancel() -> None:
            with self._hooks_guard:
                hooks = self._created_hooks.get(cid, [])
                if hook in hooks:
                    hooks.remove(hook)
        return cancel

    def _run_created_hooks(self, c: Container) -> None:
        with self._hooks_guard:
            hooks = self._created_hooks.pop(c.id, [])
        for hook in hooks:
            try:
                hook(c)
            except Exception as e:  # an attach that failed must not fail the start
                log.warning("attach hook: %s", e)

    def exit_command(self, c: Container) -> list[str]:
        return [sys.executable, "-m", "nanovisor", "--root", str(self.paths.root), "container", "cleanup", c.id]

    # start ------------------------------------------------------------------------------------------
    def start(self, ref: str | Container, attached: bool = False, op: Op = Op.START) -> Container:
        """attached: the caller stays and reaps this run itself (foreground `run`), so conmon need not call
        back on exit unless a restart policy may need carrying out later. op: START (users, and serve
        bringing back an exited `always` container) or RESPAWN (a restart policy's pending restart)."""
        with self.locked(ref) as c:
            self.check(c, op)
            self._clear_interrupted_start(c)
            try:
                self._start_locked(c, attached)
            except NanovisorError as e:
                c.state.update(Error=str(e), ExitCode=start_exit_code(str(e)))
                c.set_status(transition(c.status, Op.START_FAILED))
                self.containers.save_state(c)
                self._teardown(c)
                raise
        if self.on_started is not None:
            self.on_started(c)
        return c

    def _clear_interrupted_start(self, c: Container) -> None:
        """A start cut short between the runtime's create and the saved state (serve killed) left a runtime
        container the record does not know: delete it (and its process), and give its monitor time to record
        that exit, before this start makes a new one — else the runtime refuses the id, or that late exit file
        ends the new run."""
        runtime = self.runtimes.get(c.runtime)
        if not runtime.exists(c.id):
            return
        try:
            runtime.delete(c.id, force=True)
        except NanovisorError:
            pass
        deadline = time.monotonic() + 5  # the monitor writes it within milliseconds, unless it is gone too
        monitor = self.monitor(c)
        while not monitor.exit_written() and time.monotonic() < deadline:
            time.sleep(0.02)

    @contextmanager
    def locked(self, ref: str | Container, missing_ok: bool = False) -> Iterator[Container | None]:
        """Holds the container's lock and yields its record as stored now, with the exit of a process that
        is gone already recorded. If it is gone (removed meanwhile, or auto-removed on that exit): raises
        NotFound, or yields None if missing_ok."""
        c = ref if isinstance(ref, Container) else self.containers.get(ref)
        with self.locks.hold(c.id):
            fresh = self.containers.reload(c)
            if fresh is not None and fresh.running and self.monitor(fresh).exited():
                fresh = self.reap(fresh)
            if fresh is None:
                if missing_ok:
                    yield None
                    return
                raise no_such_container(ref if isinstance(ref, str) else c.id)
            if fresh.status is State.REMOVING:
                # removal holds the lock from start to end: found under the lock, it is the remains of a
                # removal that died midway, which may be removed again
                fresh.set_status(State.DEAD)
            yield fresh

    @staticmethod
    def check(c: Container, op: Op) -> State:
        """The state op leads c to; raises Docker's Conflict or NotModified if c's state does not allow it."""
        return transition(c.status, op, c.id, c.name)

    def _start_locked(self, c: Container, attached: bool = False) -> None:
        """image → snapshot (the rootfs mount) → bundle (config.json, /etc files, network) → runtime."""
        runtime = self.runtimes.get(c.runtime)
        rootfs = self.mount_rootfs(c)
        bundle = self.bundles.build(c, rootfs, runtime)
        self.monitor(c).forget_exit()
        created = bundle.create_with(runtime, self._create_options(c, attached))
        try:
            self._run_created_hooks(c)
            runtime.start(c.id)
        except BaseException:
            runtime.delete(c.id, force=True)
            raise
        now = time.time()
        seq = c.state.get("_StartSeq", 0) + 1
        c.set_status(State.RUNNING)
        c.state.update(OOMKilled=False, Pid=created.pid, ExitCode=0, Error="", StartedAt=now,
                       _MonitorPid=created.monitor_pid, _MonitorStart=procs.start_time(created.monitor_pid),
                       _PidStart=procs.start_time(created.pid),
                       _StartSeq=seq, _ManualStop=False)
        self.containers.save_state(c)
        self.event(c, "start")
        if self.network is not None:
            from nanovisor.engine import linking

            linking.update_parents(self.containers, self.network, self.paths, c)

    def _create_options(self, c: Container, attached: bool) -> CreateOptions:
        hc = c.host_config
        policy = (hc.get("RestartPolicy") or {}).get("Name") or "no"
        return CreateOptions(log=logconfig.spec(hc, self.paths.container_dir(c.id), c.id), exit_dir=self.paths.exits,
                             stdin=bool(c.config.get("OpenStdin")),
                             # with a TTY, end of input travels in-band (^D): a detached client must be
                             # able to attach again and type, as in Docker
                             stdin_once=bool(c.config.get("StdinOnce")) and not c.config.get("Tty"),
                             tty=bool(c.config.get("Tty")),
                             exit_command=None if self.persistent or policy == "no" and (attached or not hc.get(
                                 "AutoRemove")) else self.exit_command(c))

    # exit -------------------------------------------------------------------------------------------
    def reconcile(self, c: Container) -> Container:
        """Brings a 'running' record in line with reality (process gone → exited)."""
        if c.running and self.monitor(c).exited():
            return self.reap(c) or c
        return c

    def reap(self, c: Container, force_local: bool = False) -> Container | None:
        """Records the exit of a container whose monitor is gone; applies the restart policy or auto-remove.
        Idempotent; returns the updated container (None if removed)."""
        policy = (c.host_config.get("RestartPolicy") or {}).get("Name") or "no"
        if policy != "no" and not self.persistent and not force_local and self._exit_command_pending(c):
            return c  # conmon's exit command owns the restart decision
        restart_delay = None
        with self.locks.hold(c.id):
            fresh = self.containers.reload(c)
            if fresh is None:
                return None
            c = fresh
            monitor = self.monitor(c)
            if not c.running or not monitor.exited():
                return c
            code, finished = monitor.exit_status()
            monitor.wait_logs_flushed()  # whoever sees the exit may read the log next: all of it
            runtime = self.runtimes.get(c.runtime)
            try:
                runtime.delete(c.id, force=True)
            except NanovisorError:
                pass
            oom = monitor.oom_killed()
            self._teardown(c)
            c.state.update(Pid=0, ExitCode=code, FinishedAt=finished, OOMKilled=oom,
                           _ReapedSeq=c.state.get("_StartSeq", 0), _MonitorPid=0)
            restart_delay = self._restart_delay(c, policy, code)
            if restart_delay is None:
                c.set_status(self.check(c, Op.EXIT))
            else:
                c.set_status(self.check(c, Op.DIE_RESTART))
                c.state["_RestartCount"] = c.state.get("_RestartCount", 0) + 1
            self.containers.save_state(c)
            self.event(c, "die", exitCode=str(code))
        if restart_delay is not None:
            self._restart_later(c, restart_delay)
        elif c.host_config.get("AutoRemove"):
            self.remove(c, force=True, volumes=True)
            return None
        return c

    def _exit_command_pending(self, c: Container) -> bool:
        """True while conmon's exit command may still be running for this container."""
        return (time.time() - self.monitor(c).exit_recorded_at()) < 30

    def _restart_delay(self, c: Container, policy: str, code: int) -> float | None:
        if c.state.get("_ManualStop"):
            return None
        count = c.state.get("_RestartCount", 0)
        if policy in ("always", "unless-stopped"):
            pass
        elif policy == "on-failure":
            limit = (c.host_config.get("RestartPolicy") or {}).get("MaximumRetryCount") or 0
            if code == 0 or (limit and count >= limit):
                return None
        else:
            return None
        ran_for = time.time() - (c.state.get("StartedAt") or 0)
        return 0.1 if ran_for > 10 else min(0.1 * (2 ** min(count, 10)), 60.0)

    def _restart_later(self, c: Container, delay: float) -> None:
        def go() -> None:
            time.sleep(delay)
            fresh = self.containers.reload(c)
            if fresh is None or fresh.status is not State.RESTARTING:
                return
            try:
                self.start(fresh, op=Op.RESPAWN)
                self.event(fresh, "restart")
            except NotModified:  # stopped, or brought back by someone else, meanwhile
                pass
            except NanovisorError as e:
                log.warning("restart %s: %s", c.id[:12], e)

        if self.persistent and threading.current_thread() is not threading.main_thread():
            go()
        elif self.persistent:
            threading.Thread(target=go, daemon=False).start()
        else:
            go()

    def _teardown(self, c: Container) -> None:
        if self.network is not None:
            try:
                self.network.detach(c.id, netns_going=True)
                self.network.delete_netns(c.id)
            except NanovisorError:
                pass
        shutil.rmtree(self.paths.bundle_dir(c.id), ignore_errors=True)
        self.monitor(c).forget_exit()
        self.snapshot(c).unmount()  # a container that does not run leaves no mount (cp/export mount again)

    # stop / kill ------------------------------------------------------------------------------------
    def wait_exit(self, c: Container, timeout: float | None) -> bool:
        """Blocks until the container's process has exited and conmon has recorded it (or died)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pid, started = c.state.get("Pid", 0), c.state.get("_PidStart", 0)
        if pid and started:
            procs.wait_exit(pid, started, timeout)
        monitor = self.monitor(c)
        while not monitor.exited():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            monitor.wait(0.02 if left is None else min(left, 0.02))
        return True

    def stop(self, ref: str | Container, timeout: int | None = None, signal: str | None = None) -> Container:
        with self.locked(ref) as c:
            if not self._stop_marked(c, Op.STOP):  # a pending restart, cancelled
                return c
        if timeout is None:
            timeout = c.config.get("StopTimeout")
        if timeout is None:
            timeout = DEFAULT_STOP_TIMEOUT
        sig = parse_signal(signal or c.config.get("StopSignal"), "SIGTERM")
        runtime = self.runtimes.get(c.runtime)
        self.event(c, "kill", signal=str(sig))
        self._signal(c, runtime, sig)
        if timeout < 0 or not self.wait_exit(c, timeout):
            self._signal(c, runtime, signals.SIGKILL, all_processes=True)
            self.wait_exit(c, 30)
        fresh = self.reap(c, force_local=True) or c
        self.event(fresh, "stop")
        return fresh

    def _stop_marked(self, c: Container, op: Op) -> bool:
        """Under the lock: checks op (stop, kill, rm) against c's state and marks c stopped by hand, so no
        restart policy brings it back (moby's HasBeenManuallyStopped); a pending restart is cancelled as
        stop does (restarting → exited). True if c has a process still to signal."""
        self.check(c, op)
        if c.status in (State.RUNNING, State.PAUSED, State.RESTARTING):
            c.state["_ManualStop"] = True
            if c.status is State.RESTARTING:
                c.set_status(self.check(c, Op.STOP))
            self.containers.save_state(c)
        return c.running

    def _signal(self, c: Container, runtime, sig: int, all_processes: bool = False) -> None:
        try:
            runtime.kill(c.id, str(sig), all_processes=all_processes)
            if c.paused:
                try:
                    runtime.resume(c.id)
                except NanovisorError:
                    if not (all_processes or sig == signals.SIGKILL):  # runc thaws the cgroup for these
                        raise
                self._resumed(c)
        except NanovisorError:
            if self.monitor(c).alive():
                raise

    def _resumed(self, c: Container) -> None:
        """A paused container was thawed so that a signal reaches it: until it exits, it is running."""
        with self.locks.hold(c.id):
            fresh = self.containers.reload(c)
            if fresh is not None and fresh.paused:
                fresh.set_status(self.check(fresh, Op.UNPAUSE))
                self.containers.save_state(fresh)
        c.set_status(State.RUNNING)

    def kill(self, ref: str | Container, signal: str | None = None) -> Container:
        with self.locked(ref) as c:
            if not self._stop_marked(c, Op.KILL):  # a pending restart, cancelled
                return c
        sig = parse_signal(signal, "SIGKILL")
        self.event(c, "kill", signal=str(sig))
        self._signal(c, self.runtimes.get(c.runtime), sig)
        if sig == signals.SIGKILL:
            self.wait_exit(c, 10)
            c = self.reap(c) or c
        return c

    def restart(self, ref: str | Container, timeout: int | None = None, signal: str | None = None) -> Container:
        with self.locked(ref) as c:
            self.check(c, Op.RESTART)
        try:
            c = self.stop(c, timeout, signal)
        except NotModified:
            pass
        c = self.start(c)
        self.event(c, "restart")
        return c

    def pause(self, ref: str | Container) -> None:
        with self.locked(ref) as c:
            target = self.check(c, Op.PAUSE)
            self.runtimes.get(c.runtime).pause(c.id)
            c.set_status(target)
            self.containers.save_state(c)
        self.event(c, "pause")

    def unpause(self, ref: str | Container) -> None:
        with self.locked(ref) as c:
            target = self.check(c, Op.UNPAUSE)
            self.runtimes.get(c.runtime).resume(c.id)
            c.set_status(target)
            self.containers.save_state(c)
        self.event(c, "unpause")

    # remove -----------------------------------------------------------------------------------------
    def remove(self, ref: str | Container, force: bool = False, volumes: bool = False,
               remove_volume: Callable[[str], None] | None = None) -> None:
        c = ref if isinstance(ref, Container) else self.containers.get(ref)
        with self.locked(c, missing_ok=True) as found:
            if found is None:
                return  # removed meanwhile (auto-remove on its exit, or another rm)
            c = found
            has_process = self._stop_marked(c, Op.REMOVE_FORCE if force else Op.REMOVE)
        if has_process:
            self._signal(c, self.runtimes.get(c.runtime), signals.SIGKILL, all_processes=True)
            self.wait_exit(c, 30)
            self.reap(c, force_local=True)
        with self.locked(c, missing_ok=True) as found:
            if found is None:
                return
            c = found
            c.set_status(self.check(c, Op.REMOVE))  # stopped by hand: no restart policy brought it back
            self.containers.save_state(c)
            try:
                self._teardown(c)
                runtime = self.runtimes.get(c.runtime)
                if runtime.exists(c.id):  # reaping deleted it already, unless it failed midway
                    try:
                        runtime.delete(c.id, force=True)
                    except NanovisorError:
                        pass
                self.snapshot(c).remove()
                self.containers.delete(c)
            except BaseException:
                c.set_status(self.check(c, Op.REMOVE_FAILED))  # dead: `rm` may try again
                self.containers.save_state(c)
                raise
        self.locks.forget(c.id)
        remove_volume = remove_volume or self.remove_volume
        if volumes and remove_volume is not None:
            for p in c.spec.get("MountPoints") or []:
                if p["Type"] == "volume" and p.get("_Anonymous", len(p.get("Name", "")) == 64):
                    try:
                        remove_volume(p["Name"])
                    except NanovisorError:
                        pass
        self.event(c, "destroy")

