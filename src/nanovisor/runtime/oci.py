"""Any runc-compatible OCI runtime binary (runc, crun, nanovisor-vm-runtime), monitored by conmon.

conmon (Debian's, the monitor podman uses) is the per-container process that outlives the CLI and the
daemon: it holds the container's stdio and pty, writes the log file, serves the attach socket and writes the
exit code. It costs ~2 MB RSS per container, where a Python monitor would cost ~10 MB.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from nanovisor.errors import Conflict, InvalidParameter, NotFound, SystemError_
from nanovisor.runtime import logfiles
from nanovisor.runtime.base import Created, CreateOptions
from nanovisor.runtime.logfiles import LogSpec

CREATE_TIMEOUT = 300.0  # seconds; a VM container boots a kernel under TCG before it is "created"


def conmon_binary() -> str:
    path = shutil.which("conmon") or "/usr/bin/conmon"
    if not os.path.exists(path):
        raise SystemError_("conmon not found: run scripts/install.sh")
    return path


def start_error(message: str) -> InvalidParameter | SystemError_:
    """moby's classification of runtime start failures: a missing or non-executable program is the user's."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered \
            or "permission denied" in lowered or "exec format error" in lowered or "is a directory" in lowered:
        return InvalidParameter(message)
    return SystemError_(message)


def start_exit_code(message: str) -> int:
    """The exit code Docker records for a container that failed to start."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered or "exec format error" in lowered or "is a directory" in lowered:
        return 126
    return 128


class OCIRuntime:
    """One OCI runtime binary; state under state_root (its --root)."""

    def __init__(self, name: str, binary, state_root: Path, isolation: str = "process",
                 status: Callable[[], dict] | None = None, refusal: Callable[[], str | None] | None = None) -> None:
        """binary: its path, or a function that finds it (looked up on first use); status: more of its
        /info status; refusal: why this host cannot run it (see Runtime.unsupported_reason)."""
        self.name = name
        self._binary = binary
        self.state_root = state_root
        self.isolation = isolation
        self._status = status
        self._refusal = refusal

    @property
    def binary(self) -> str | None:
        if callable(self._binary):
            self._binary = self._binary()
        return self._binary

    @property
    def network_shareable(self) -> bool:
        """Whether another container can join this one's network namespace and see its traffic: not when
        the container's network stack is a guest kernel's (the netns only carries frames to the VM)."""
        return self.isolation == "process"

    @property
    def reads_network_at_create(self) -> bool:
        """A VM runtime copies the netns's interfaces into its guest at create, so they must exist by then;
        a process runtime only joins the namespace, which may be plumbed while it creates."""
        return self.isolation == "vm"

    def available(self) -> bool:
        return bool(self.binary) and os.access(self.binary, os.X_OK)

    def unsupported_reason(self) -> str | None:
        return self._refusal() if self._refusal is not None else None

    def _argv(self, *args: str) -> list[str]:
        if not self.available():
            raise InvalidParameter(f"unknown or invalid runtime name: {self.name}")
        return [self.binary, f"--root={self.state_root}", *args]

    def _run(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(self._argv(*args), capture_output=True, input=input)
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).decode(errors="replace").strip()
            if "does not exist" in msg or "not exist" in msg:
                raise NotFound(msg)
            if "not running" in msg or "is stopped" in msg or "cannot" in msg or "not paused" in msg:
                raise Conflict(msg)
            raise SystemError_(f"{self.name} {args[0]}: {msg}")
        return proc

    # lifecycle ---------------------------------------------------------------------------------------
    def create(self, cid: str, bundle: Path, opts: CreateOptions) -> Created:
        """Start conmon, which runs `RUNTIME create`; returns once the container exists (not yet started)."""
        self.state_root.mkdir(parents=True, exist_ok=True)
        oci_log = bundle / "oci-log"
        argv = [
            conmon_binary(), "--api-version", "1", "-c", cid, "-u", cid, "-n", cid[:12],
            "-r", self._argv()[0], "-b", str(bundle), "-p", str(bundle / "pid"),
            "--conmon-pidfile", str(bundle / "conmon.pid"),
            "--exit-dir", str(opts.exit_dir), "-0", str(bundle),
            "--full-attach", "--socket-dir-path", str(bundle),
            "--log-level", "error",
            "--runtime-arg", f"--root={self.state_root}",
            "--runtime-arg", "--log-format=json", "--runtime-arg", f"--log={oci_log}",
        ]
        argv += self._log_args(opts.log, bundle)
        if opts.stdin:
            argv += ["-i"] if opts.stdin_once else ["-i", "--leave-stdin-open"]
        if opts.tty:
            argv += ["-t"]
        for i, arg in enumerate(opts.exit_command or []):
            argv += ["--exit-command", arg] if i == 0 else ["--exit-command-arg", arg]
        try:
            pid = self._create_monitored(argv)
        except BaseException:
            logfiles.stop_writer(bundle)  # conmon never opened the log fifo: the logger would wait for it
            raise
        monitor_pid = int((bundle / "conmon.pid").read_text().strip())
        return Created(pid=pid, monitor_pid=monitor_pid)

    def _create_monitored(self, argv: list[str]) -> int:
        """Runs conmon (which runs `RUNTIME create`) and returns the container's pid from its sync pipe."""
        rfd, wfd = os.pipe()
        try:
            env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "LISTEN_FDS")}
            env["_OCI_SYNCPIPE"] = str(wfd)
            env["TZ"] = "UTC"  # its log timestamps: dockerd writes UTC
            proc = subprocess.Popen(argv, env=env, pass_fds=[wfd], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            os.close(wfd)
            wfd = -1
            proc.wait()  # conmon forks: the parent returns at once; its child is the monitor
            reply = self._read_sync(rfd)
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
        if reply is None:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise SystemError_(f"{self.name}: monitor failed to create the container {err}".strip())
        pid = int(reply.get("data", -1))
        if pid <= 0:
            raise start_error(reply.get("message", "").strip() or f"{self.name} create failed")
        return pid

    @staticmethod
    def _log_args(log: LogSpec, bundle: Path) -> list[str]:
        """conmon writes k8s-file itself; json-file and local go through nv-logger's fifo; none keeps nothing."""
        if log.path is None:
            return ["-l", "none:"]
        if log.driver in logfiles.WRITER_DRIVERS:
            return ["-l", f"k8s-file:{logfiles.start_writer(log, bundle)}", "--no-sync-log"]
        args = ["-l", f"k8s-file:{log.path}"]
        return args + (["--log-size-max", str(log.max_size)] if log.max_size > 0 else [])

    @staticmethod
    def _read_sync(fd: int) -> dict | None:
        buf = b""
        while b"\n" not in buf:
            ready, _, _ = select.select([fd], [], [], CREATE_TIMEOUT)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
        line = buf.split(b"\n", 1)[0]
        try:
            return json.loads(line) if line else None
        except ValueError:
            return None

    def start(self, cid: str) -> None:
        proc = self._run("start", cid, check=False)
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip()
            raise start_error(msg or f"{self.name} start failed")

    def kill(self, cid: str, signal: str, all_processes: bool = False) -> None:
        args = ["kill", "--all", cid, signal] if all_processes else ["kill", cid, signal]
        self._run(*args)

    def delete(self, cid: str, force: bool = False) -> None:
        proc = self._run("delete", *(["--force"] if force else []), cid, check=False)
        if proc.returncode != 0 and self.state(cid) is not None:
            raise SystemError_(f"{self.name} delete: {proc.stderr.decode(errors='replace').strip()}")

    def exists(self, cid: str) -> bool:
        return (self.state_root / cid).exists()

    def state(self, cid: str) -> dict | None:
        proc = self._run("state", cid, check=False)
        if proc.returncode != 0:
            return None
        try:
            return json.loads(proc.stdout)
        except ValueError:
            return None

    def pause(self, cid: str) -> None:
        self._run("pause", cid)

    def resume(self, cid: str) -> None:
        self._run("resume", cid)

    def update(self, cid: str, resources: dict) -> None:
        """New OCI linux.resources for a running container (`runc update --resources -`)."""
        self._run("update", "--resources", "-", cid, input=json.dumps(resources).encode())

    def sync_network(self, cid: str) -> None:
        """A process container lives in the namespace itself; a VM copied the namespace's interfaces into its
        guest at boot, so its runtime carries each change in (`nanovisor-vm-runtime network`: a macvlan on
        the guest's first NIC per new network, see runtime/vm/net.py)."""
        if self.isolation == "vm":
            self._run("network", cid)

    def pids(self, cid: str) -> list[int]:
        proc = self._run("ps", "--format", "json", cid)
        return [int(p) for p in json.loads(proc.stdout or b"[]") or []]

    def top(self, cid: str, ps_args: str) -> dict:
        """`docker top`: host `ps` rows of the container's pids; a VM's processes are only visible to its
        own runtime, whose `ps` table is computed inside the guest."""
        if self.isolation == "vm":
            lines = self._run("ps", "--format", "table", cid).stdout.decode().splitlines()
            titles = lines[0].split() if lines else []
            return {"Titles": titles,
                    "Processes": [line.split(None, len(titles) - 1) for line in lines[1:] if line.strip()]}
        from nanovisor.runtime.hostps import top

        return top(self.pids(cid), ps_args)

    def stats(self, cid: str) -> dict:
        proc = self._run("events", "--stats", cid)
        return json.loads(proc.stdout).get("data", {})

    def exec_command(self, cid: str, process_file: Path, tty: bool, detach: bool,
                     console_socket: Path | None, pid_file: Path | None) -> list[str]:
        args = ["exec", "--process", str(process_file)]
        if detach:
            args.append("--detach")
        if tty and console_socket is not None:  # detached: the runtime hands the pty to the socket
            args += ["--tty", "--console-socket", str(console_socket)]
        if pid_file:
            args += ["--pid-file", str(pid_file)]
        return self._argv(*args, cid)

    def describe(self) -> dict:
        status = {"isolation": self.isolation}
        try:
            status.update({k: str(v) for k, v in (self._status() if self._status else {}).items()})
            reason = self.unsupported_reason()
        except Exception as e:  # describing must never break /info
            status["error"], reason = str(e), None
        if reason:
            status["unsupported"] = reason
        return {"path": self.binary or "", "status": status}
