"""The per-container host process: what conmon waits for in place of runc's container init.

Forked by `create`, it boots the microVM, has the agent set the container up, then relays the container's stdio
between its own stdio (conmon's pipes, or the host pty whose master conmon holds) and the guest, serves the
control socket (start/kill/exec/stats/ps), and finally exits with the container's wait status — exit code N or
killed by signal N — after tearing the VM down. If the guest dies (panic, crash) the container exits too.
"""

from __future__ import annotations

import errno
import fcntl
import json
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
KILL_GRACE = 10.0  # after SIGKILL, a guest that still did not report the exit is considered hung
# the agent speaks at least every 5 s (heartbeat); this much silence from a running VM means the guest hung
HANG_TIMEOUT = float(os.environ.get("NANOVISOR_VM_HANG_TIMEOUT", "60"))
FORWARD = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


class Conn:
    """A non-blocking socket with an output queue (the agent, or an exec client)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock, self.out, self.dec, self.line = sock, bytearray(), Decoder(), bytearray()
        self.exec_id: int | None = None


class Shim:
    def __init__(self, c: Container, plan: Plan, report_fd: int, tty_fd: int | None) -> None:
        self.c, self.plan, self.report_fd, self.tty_fd = c, plan, report_fd, tty_fd
        self.sel = selectors.DefaultSelector()
        self.agent: Conn | None = None
        self.execs: dict[int, Conn] = {}
        self.waiting: dict[int, Conn] = {}  # stats/ps request id -> client
        self.next_id = 1
        self.kill_deadline: float | None = None
        self.vm: vmm.VM | None = None
        self.signals: list[int] = []
        self.last_heard = time.monotonic()
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
        vmdir = self.c.vmdir
        vmdir.mkdir(mode=0o700)
        if self.plan_netns:
            self.net = vmnet.wire(self.plan_netns)
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
                    return payload
                self.dispatch(t, i, payload)
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

    def on_signal(self, signum: int, _frame) -> None:
        self.signals.append(signum)

    def loop(self) -> None:
        assert self.agent and self.vm
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd)
        for s in (*FORWARD, signal.SIGWINCH, signal.SIGCHLD):
            signal.signal(s, self.on_signal)
        self.sel.register(rfd, selectors.EVENT_READ, "signal")
        in_fd = self.tty_fd if self.tty_fd is not None else 0
        try:
            os.set_blocking(in_fd, False)
            self.sel.register(in_fd, selectors.EVENT_READ, "stdin")
        except PermissionError:  # /dev/null (conmon without -i): epoll refuses it, and it is at EOF anyway
            self.to_agent(protocol.STDIN, 0)
        lsock = self.ctl_socket()
        lsock.setblocking(False)
        self.sel.register(lsock, selectors.EVENT_READ, "listen")
        if self.net.dns is not None:
            self.net.dns.setblocking(False)
            self.sel.register(self.net.dns, selectors.EVENT_READ, "dns")
        self.report("")
        while True:
            timeout = None
            if self.kill_deadline is not None:
                timeout = max(0.0, self.kill_deadline - time.monotonic())
                if timeout == 0:
                    self.finish(signal.SIGKILL, "the guest did not stop after SIGKILL; microVM killed")
            for key, ev in self.sel.select(timeout if timeout is not None else 1.0):
                d = key.data
                if d == "signal":
                    try:
                        os.read(rfd, 512)
                    except BlockingIOError:
                        pass
                    self.handle_signals()
                elif d == "stdin":
                    self.read_stdin(in_fd)
                elif d == "dns":
                    self.dns_reply()
                elif d == "listen":
                    try:
                        s, _ = lsock.accept()
                    except BlockingIOError:
                        continue
                    conn = Conn(s)
                    self.sel.register(s, selectors.EVENT_READ, conn)
                elif isinstance(d, Conn):
                    if ev & selectors.EVENT_WRITE:
                        self.flush(d)
                    if ev & selectors.EVENT_READ:
                        self.read_conn(d)
            try:
                self.check_vm()
            except OSError as e:
                self.finish(signal.SIGKILL, f"the microVM stopped: {e}")
            if (self.c.dir / "paused").exists():
                self.last_heard = time.monotonic()  # a paused VM is silent on purpose
            elif time.monotonic() - self.last_heard > HANG_TIMEOUT:
                self.finish(signal.SIGKILL, f"the guest did not answer for {HANG_TIMEOUT:.0f} s; microVM killed")

    def ctl_socket(self) -> socket.socket:
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bind_unix(lsock, self.c.ctl)
        os.chmod(self.c.ctl, 0o600)
        lsock.listen(16)
        return lsock

    def exec_c_shim(self) -> None:
        """Become the C relay (same pid: conmon keeps waiting on us); returns only if it is not built."""
        binary = guest.c_shim_path()
        if os.environ.get("NANOVISOR_VM_PY_SHIM") or not binary.exists() or self.agent is None or self.vm is None:
            return
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

    def handle_signals(self) -> None:
        sigs, self.signals = self.signals, []
        for s in sigs:
            if s == signal.SIGWINCH:
                rows, cols = self.winsize()
                self.to_agent(protocol.RESIZE, 0, f"{rows} {cols}".encode())
            elif s in FORWARD:
                self.to_agent(protocol.KILL, 0, f"{s} 0".encode())

    def dns_query(self, payload: bytes) -> None:
        """A query the agent took on the guest's 127.0.0.11: ask netd's socket in the container's namespace."""
        if self.net.dns is not None:
            try:
                self.net.dns.send(payload)
            except OSError:
                pass  # nobody listening (netd restarting): the guest's resolver times out and retries

    def dns_reply(self) -> None:
        assert self.net.dns is not None
        while True:
            try:
                data = self.net.dns.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # ICMP port unreachable surfaces here as ECONNREFUSED: drop it
            self.to_agent(protocol.DNS, 0, data)

    def read_stdin(self, fd: int) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError as e:  # EIO: the pty master side is closed
            if e.errno != errno.EIO:
                raise
            data = b""
        if data:
            self.to_agent(protocol.STDIN, 0, data)
            return
        self.sel.unregister(fd)
        if self.tty_fd is None:
            self.to_agent(protocol.STDIN, 0)

    def read_conn(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if conn is self.agent:
            if not data:
                self.finish(signal.SIGKILL, "the microVM closed the agent channel")
            self.last_heard = time.monotonic()
            for t, i, payload in conn.dec.feed(data):
                self.dispatch(t, i, payload)
            return
        if not data:
            self.drop(conn)
            return
        if conn.exec_id is not None:
            self.read_conn_data(conn, data)
            return
        conn.line += data
        if b"\n" in conn.line:
            line, _, rest = bytes(conn.line).partition(b"\n")
            conn.line.clear()
            self.request(conn, json.loads(line), rest)

    def drop(self, conn: Conn) -> None:
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        if conn.exec_id is not None:
            self.execs.pop(conn.exec_id, None)

    def reply(self, conn: Conn, obj: dict) -> None:
        self.send(conn, json.dumps(obj).encode() + b"\n")

    def request(self, conn: Conn, req: dict, rest: bytes) -> None:
        op = req.get("op")
        if op == "start":
            (self.c.dir / "started").touch()
            self.to_agent(protocol.START, 0)
            self.reply(conn, {"ok": True})
        elif op == "kill":
            sig = int(req["signal"])
            self.to_agent(protocol.KILL, 0, f"{sig} {1 if req.get('all') else 0}".encode())
            if sig == signal.SIGKILL and self.kill_deadline is None:
                self.kill_deadline = time.monotonic() + KILL_GRACE
            self.reply(conn, {"ok": True})
        elif op in ("stats", "ps"):
            ident = self.new_id()
            self.waiting[ident] = conn
            self.to_agent(protocol.STATS if op == "stats" else protocol.PS, ident)
        elif op == "exec":  # then frames: EXEC (the process, kv-encoded), STDIN, RESIZE, KILL
            ident = self.new_id()
            conn.exec_id = ident
            self.execs[ident] = conn
            if rest:
                self.read_conn_data(conn, rest)
        else:
            self.reply(conn, {"error": f"unknown op {op}"})

    def read_conn_data(self, conn: Conn, data: bytes) -> None:
        for t, _i, payload in conn.dec.feed(data):
            self.to_agent(t, conn.exec_id or 0, payload)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def dispatch(self, t: bytes, ident: int, payload: bytes) -> None:
        if t == protocol.DNS:
            self.dns_query(payload)
            return
        if ident == 0:
            if t == protocol.STDOUT or t == protocol.STDERR:
                if payload:
                    fd = self.tty_fd if self.tty_fd is not None else (1 if t == protocol.STDOUT else 2)
                    write_all(fd, payload)
            elif t == protocol.EXIT:
                self.finish(int(payload), None)
            return
        if t == protocol.REPLY:
            conn = self.waiting.pop(ident, None)
            if conn:
                self.reply(conn, {"ok": True, "data": payload.decode()})
            return
        conn = self.execs.get(ident)
        if conn:
            self.send(conn, frame(t, 0, payload))
            if t == protocol.EXIT or (t == protocol.CREATED and payload):
                self.execs.pop(ident, None)

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

    def finish(self, status: int, why: str | None) -> None:
        """Tear down and leave with the container's wait status (exit code, or death by the same signal)."""
        if why:
            write_all(2 if self.tty_fd is None else self.tty_fd, f"nanovisor-vm: {why}\n".encode())
            status = signal.SIGKILL  # wait status of a SIGKILLed process
        for conn in list(self.execs.values()):
            try:
                conn.sock.setblocking(True)
                conn.sock.sendall(bytes(conn.out) + frame(protocol.EXIT, 0, str(signal.SIGKILL).encode()))
            except OSError:
                pass
        self.teardown()
        (self.c.dir / "exit").write_text(str(status))
        exit_like(status)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select
            select.select([], [fd], [])
            continue
        except OSError:
            return  # reader gone (conmon died): drop output, keep the container's fate intact
        view = view[n:]


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
        shim.loop()
    except BaseException as e:  # noqa: BLE001
        try:
            sys.stderr.write(f"nanovisor-vm shim: {e!r}\n")
            shim.teardown()
        finally:
            os._exit(code)


