"""The per-container host process: what conmon waits for in place of runc's container init — its boot half.

Forked by `create`, it boots the microVM and has the agent set the container up, then execs the C shim
(guest/host/shim.c, same pid, ~1 MB instead of a ~12 MB Python process), which owns the steady state: it relays
the container's stdio between its own stdio (conmon's pipes, or the host pty whose master conmon holds) and the
guest, serves the control socket (start/kill/exec/stats/ps), and finally exits with the container's wait status
— exit code N or killed by signal N — after tearing the VM down. If the guest dies (panic, crash) the container
exits too. There is no Python steady-state loop: one implementation per role.
"""

from __future__ import annotations

import fcntl
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import termios
import time

from nanovisor.runtime.vm import guest, protocol, vmm
from nanovisor.runtime.vm import net as vmnet
from nanovisor.runtime.vm.bundle import Plan
from nanovisor.runtime.vm.protocol import Decoder, frame
from nanovisor.runtime.vm.state import Container, bind_unix


def trace(phase: str) -> None:
    """NANOVISOR_VM_TRACE=FILE appends "<unix time> <pid> <phase>" per start-up phase: where a `create` spends
    its time (bench/vm_boot.py's ratio), without a profiler."""
    path = os.environ.get("NANOVISOR_VM_TRACE")
    if path:
        with open(path, "a") as f:
            f.write(f"{time.time():.4f} {os.getpid()} {phase}\n")


BOOT_TIMEOUT = float(os.environ.get("NANOVISOR_VM_BOOT_TIMEOUT", "120"))
# the agent speaks at least every 5 s (heartbeat); this much silence from a running VM means the guest hung
HANG_TIMEOUT = float(os.environ.get("NANOVISOR_VM_HANG_TIMEOUT", "60"))


class Conn:
    """The agent's socket, non-blocking, with an output queue."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock, self.out, self.dec = sock, bytearray(), Decoder()


class Shim:
    def __init__(self, c: Container, plan: Plan, report_fd: int, tty_fd: int | None) -> None:
        self.c, self.plan, self.report_fd, self.tty_fd = c, plan, report_fd, tty_fd
        self.sel = selectors.DefaultSelector()
        self.agent: Conn | None = None
        self.vm: vmm.VM | None = None
        self.net = vmnet.Wiring()

    # ---------- plumbing ----------
    def send(self, conn: Conn, data: bytes) -> None:
        if not conn.out:
            try:
                n = conn.sock.send(data)
                data = data[n:]
            except BlockingIOError:
                pass
            except OSError:
                return
        if data:
            conn.out += data
            self.sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    def flush(self, conn: Conn) -> None:
        try:
            n = conn.sock.send(conn.out)
            del conn.out[:n]
        except BlockingIOError:
            return
        except OSError:
            conn.out.clear()
        if not conn.out:
            self.sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def to_agent(self, kind: bytes, ident: int, payload: bytes = b"") -> None:
        if self.agent:
            self.send(self.agent, frame(kind, ident, payload))

    def report(self, msg: str) -> None:
        if self.report_fd >= 0:
            os.write(self.report_fd, msg.encode() or b"\0")
            os.close(self.report_fd)
            self.report_fd = -1

    # ---------- boot ----------
    def boot(self) -> None:
        trace("boot")
        arts = guest.artifacts()
        if not arts:
            raise OSError("nano guest is not built: run `python -m nanovisor.runtime.vm.guest build`")
        self.c_shim = guest.host_tool("nv-shim")  # what takes over after boot; before the VM exists
        vmdir = self.c.vmdir
        vmdir.mkdir(mode=0o700)
        if self.plan_netns:
            self.net = vmnet.wire(self.plan_netns)
            vmnet.save_record(self.c.dir, self.net.record())
        trace("net")
        fsd, fs_client = vmm.start_virtiofsd(self.plan, vmdir)
        trace("virtiofsd")
        try:
            ch = vmm.channels(vmdir, fs_client, self.net)
            qemu = vmm.start_qemu(self.plan, vmdir, ch, arts[0], arts[1], self.plan_netns)
            trace("qemu")
        except Exception:
            os.killpg(fsd.pid, signal.SIGKILL)
            fsd.wait()
            raise
        ch.close_vm_side()
        self.vm = vmm.VM(qemu, fsd)
        (self.c.dir / "pids").write_text(f"{qemu.pid} {fsd.pid}\n")
        deadline = time.monotonic() + BOOT_TIMEOUT
        self.agent = Conn(ch.agent)
        self.sel.register(ch.agent, selectors.EVENT_READ, self.agent)
        ready = self.wait_for(protocol.READY, 0, deadline)
        self.guest_release = ready.decode()
        trace("ready")
        self.to_agent(protocol.CREATE, 0, protocol.kv(self.create_kv()))
        err = self.wait_for(protocol.CREATED, 0, deadline)
        trace("created")
        if err:
            raise OSError(err.decode(errors="replace"))

    def create_kv(self) -> list[tuple[str, str]]:
        kvs = list(self.plan.create) + self.net.agent_kv()
        if self.tty_fd is not None and not any(k == "winsize" for k, _ in kvs):
            rows, cols = self.winsize()
            if rows and cols:
                kvs.append(("winsize", f"{rows} {cols}"))
        return kvs

    def wait_for(self, kind: bytes, ident: int, deadline: float) -> bytes:
        """Boot-time synchronous wait for one agent frame (nothing else is flowing yet)."""
        assert self.agent
        while True:
            if self.agent.out:
                self.flush(self.agent)
            for t, i, payload in self.agent.dec.feed(self.recv_agent(timeout=0.2)):
                if t == kind and i == ident:
                    return payload  # nothing else is expected before the container's process starts
            self.check_vm(booting=True)
            if time.monotonic() > deadline:
                raise OSError("timed out waiting for the guest agent")

    def recv_agent(self, timeout: float) -> bytes:
        assert self.agent
        r = selectors.DefaultSelector()
        r.register(self.agent.sock, selectors.EVENT_READ)
        ok = r.select(timeout)
        r.close()
        if not ok:
            return b""
        try:
            data = self.agent.sock.recv(1 << 16)
        except BlockingIOError:
            return b""
        if not data:
            raise OSError("the microVM closed the agent channel")
        return data

    def check_vm(self, booting: bool = False) -> None:
        assert self.vm
        for name, p in (("qemu", self.vm.qemu), ("virtiofsd", self.vm.virtiofsd)):
            if p.poll() is not None:
                log = (self.c.vmdir / f"{name}.log").read_text(errors="replace").strip()[-600:]
                raise OSError(f"{name} exited ({p.returncode}){': ' + log if log else ''}")

    # ---------- running ----------
    def winsize(self) -> tuple[int, int]:
        if self.tty_fd is None:
            return 0, 0
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(self.tty_fd, termios.TIOCGWINSZ, b"\0" * 8))
        return rows, cols

    def ctl_socket(self) -> socket.socket:
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bind_unix(lsock, self.c.ctl)
        os.chmod(self.c.ctl, 0o600)
        lsock.listen(16)
        return lsock

    def exec_c_shim(self) -> None:
        """Become the C shim (same pid: conmon keeps waiting on us); never returns."""
        binary = self.c_shim
        assert self.agent is not None and self.vm is not None
        if self.agent.out:
            self.agent.sock.setblocking(True)
            self.agent.sock.sendall(bytes(self.agent.out))
        lsock = self.ctl_socket()
        fds = [self.agent.sock.fileno(), lsock.fileno(), self.report_fd]
        if self.tty_fd is not None:
            fds.append(self.tty_fd)
        for fd in fds:
            os.set_inheritable(fd, True)
        dns = self.net.dns.fileno() if self.net.dns is not None else -1
        if dns >= 0:
            os.set_inheritable(dns, True)
        tty = str(self.tty_fd) if self.tty_fd is not None else "-1"
        os.execv(binary, [str(binary), str(self.c.dir), str(fds[0]), str(fds[1]), str(self.report_fd), tty,
                          str(self.vm.qemu.pid), str(self.vm.virtiofsd.pid), str(HANG_TIMEOUT), str(dns)])

    # ---------- the end ----------
    def teardown(self) -> None:
        if self.vm:
            for p in (self.vm.qemu, self.vm.virtiofsd):
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # the group: virtiofsd forks its sandboxed worker
                except ProcessLookupError:
                    pass
                p.wait()
            # we are their subreaper: collect the grandchildren too, so nothing outlives the container
            while True:
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    break
        self.net.close()
        for name in ("fs.sock", "qmp.sock"):
            try:
                (self.c.vmdir / name).unlink()
            except OSError:
                pass
        try:
            self.c.ctl.unlink()
        except OSError:
            pass


def exit_like(status: int) -> None:
    """Exit so our parent's waitpid sees exactly `status` (a raw wait status from the guest)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.set_wakeup_fd(-1)
        for s in range(1, signal.NSIG):
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, [s])
            except (OSError, ValueError):
                pass
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), sig)
        time.sleep(1)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 255)


def run(c: Container, plan: Plan, report_fd: int, tty_fd: int | None, netns: str | None) -> None:
    """Body of the forked shim; never returns."""
    code = 1
    vmm._libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    shim = Shim(c, plan, report_fd, tty_fd)
    shim.plan_netns = netns
    try:
        try:
            shim.boot()
        except Exception as e:  # noqa: BLE001 - every failure must reach `create`'s caller
            shim.report(str(e) or type(e).__name__)
            shim.teardown()
            os._exit(1)
        shim.exec_c_shim()
    except BaseException as e:  # noqa: BLE001
        try:
            sys.stderr.write(f"nanovisor-vm shim: {e!r}\n")
            shim.teardown()
        finally:
            os._exit(code)


