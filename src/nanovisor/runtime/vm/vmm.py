"""Start virtiofsd and QEMU (microvm) for one container, confined, and tied to the shim's life.

virtiofsd runs as root (it needs to serve any file owner) but in a private mount namespace where the container's
bind mounts are attached to the rootfs, so the host's mount table never changes and nothing outlives it.
QEMU runs as an unprivileged user with no capabilities, no_new_privs, seccomp (-sandbox on), and dies with the
shim (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nanovisor.runtime.vm import accel
from nanovisor.runtime.vm import net as vmnet
from nanovisor.runtime.vm.bundle import HostBind, Plan
from nanovisor.runtime.vm.state import bind_unix, connect_unix

QEMU = os.environ.get("NANOVISOR_QEMU", "qemu-system-x86_64")
VIRTIOFSD = os.environ.get("NANOVISOR_VIRTIOFSD", "/usr/lib/qemu/virtiofsd")
# Boot-time knobs, measured under TCG: calibrating and checking the local APIC timer costs ~300 ms of a
# ~600 ms boot; without it the PIT drives the tick (idle cost unchanged; SMP works). pic=off breaks timers.
MACHINE_EXTRA = os.environ.get("NANOVISOR_VM_MACHINE_EXTRA", "")
CMDLINE_FAST = os.environ.get("NANOVISOR_VM_CMDLINE_FAST", "no_timer_check noapictimer")
TB_MIB = int(os.environ.get("NANOVISOR_VM_TB_MIB", "12"))  # TCG code cache: host RAM per VM vs retranslation
QEMU_UID = int(os.environ.get("NANOVISOR_QEMU_UID", "65534"))  # nobody: QEMU needs no identity of its own

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x20000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_SLAVE = 1, 32, 4096, 16384, 1 << 19
PR_SET_PDEATHSIG = 1


def _pdeathsig() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _mount(src: str | None, dst: str, flags: int) -> None:
    if _libc.mount(src and src.encode(), dst.encode(), None, flags, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {src} on {dst}: {os.strerror(e)}")


def _prepare_target(root: Path, dest: str, source: str) -> str:
    """Create the mount point inside the rootfs (as runc does) without following symlinks out of it."""
    target = root
    for part in [p for p in dest.split("/") if p not in ("", ".")]:
        if part == "..":
            raise ValueError(f"mount destination {dest} escapes the rootfs")
        target = target / part
        if target.is_symlink():
            raise ValueError(f"mount destination {dest} crosses a symlink")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.isdir(source):
            target.mkdir()
        else:
            target.touch()
    return str(target)


def _bind_all(rootfs: Path, binds: list[HostBind]) -> None:
    """Runs in virtiofsd's child between fork and exec: private mount ns + the container's binds."""
    _pdeathsig()
    if _libc.unshare(CLONE_NEWNS) != 0:
        os._exit(120)
    _mount(None, "/", MS_REC | MS_SLAVE)
    for b in binds:
        dst = _prepare_target(rootfs, b.destination, b.source)
        _mount(b.source, dst, MS_BIND | (MS_REC if b.recursive else 0))
        if b.readonly:
            _mount(None, dst, MS_BIND | MS_REMOUNT | MS_RDONLY)


@dataclass
class VM:
    qemu: subprocess.Popen
    virtiofsd: subprocess.Popen


def start_virtiofsd(p: Plan, vmdir: Path) -> tuple[subprocess.Popen, socket.socket]:
    """virtiofsd on a listening socket; returns it and a connected client end for QEMU."""
    path = vmdir / "fs.sock"
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bind_unix(lsock, path)
    lsock.listen(1)
    opts = f"source={p.rootfs},cache=auto,xattr,announce_submounts,modcaps=-mknod,log_level=err"
    args = [VIRTIOFSD, f"--fd={lsock.fileno()}", "-o", opts]
    log = open(vmdir / "virtiofsd.log", "wb")
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                pass_fds=[lsock.fileno()], start_new_session=True,
                                preexec_fn=lambda: _bind_all(p.rootfs, p.binds))
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connect_unix(client, path)  # queued in the backlog until virtiofsd accepts
        return proc, client
    finally:
        log.close()
        lsock.close()
        path.unlink(missing_ok=True)


@dataclass
class Channels:
    """Everything QEMU talks to, opened by us and handed over as file descriptors (QEMU opens no paths)."""
    agent: socket.socket      # our end of the virtio-serial port
    agent_vm: socket.socket   # QEMU's end
    fs: socket.socket         # connected to virtiofsd
    qmp: socket.socket        # listening; `pause`/`resume` connect to vm/qmp.sock
    console: int              # the guest's serial console, for post-mortems
    net: vmnet.Wiring         # taps (QEMU's) and the DNS relay socket (ours)

    def vm_fds(self) -> list[int]:
        return [self.agent_vm.fileno(), self.fs.fileno(), self.qmp.fileno(), self.console, *vmnet.vm_fds(self.net)]

    def close_vm_side(self) -> None:
        for s in (self.agent_vm, self.fs, self.qmp):
            s.close()
        os.close(self.console)
        for n in self.net.nics:  # QEMU holds the taps now: they vanish when it exits
            os.close(n.tap_fd)
            n.tap_fd = -1


def channels(vmdir: Path, fs: socket.socket, net: vmnet.Wiring) -> Channels:
    agent, agent_vm = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    qmp = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bind_unix(qmp, vmdir / "qmp.sock")
    qmp.listen(4)
    console = os.open(vmdir / "console.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    return Channels(agent, agent_vm, fs, qmp, console, net)


def qemu_args(p: Plan, ch: Channels, kernel: Path, initrd: Path) -> list[str]:
    acc = accel.describe()["accelerator"]
    cmdline = os.environ.get("NANOVISOR_VM_CMDLINE_EXTRA", "quiet") + " console=ttyS0 panic=-1 reboot=t pci=off nomodule random.trust_cpu=on"
    if acc == "tcg":
        cmdline += f" tsc_early_khz={accel.tsc_khz()} {CMDLINE_FAST}"
    mem = f"{p.mem_mib}M"
    return [
        QEMU, "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
        "-M", "microvm,memory-backend=mem,acpi=off,pcie=off,isa-serial=on,rtc=on" + MACHINE_EXTRA,
        "-accel", "kvm" if acc == "kvm" else f"tcg,tb-size={TB_MIB}",
        "-cpu", "host" if acc == "kvm" else "max",
        "-smp", str(p.cpus), "-m", mem,
        "-object", f"memory-backend-memfd,id=mem,size={mem},share=on",
        "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
        "-add-fd", f"fd={ch.console},set=1", "-chardev", "file,id=con,path=/dev/fdset/1", "-serial", "chardev:con",
        "-global", "virtio-mmio.force-legacy=false",
        "-device", "virtio-rng-device",
        "-chardev", f"socket,id=fs,fd={ch.fs.fileno()}",
        "-device", "vhost-user-fs-device,chardev=fs,tag=rootfs",
        "-device", "virtio-serial-device,max_ports=2",
        "-chardev", f"socket,id=nv,fd={ch.agent_vm.fileno()}",
        "-device", "virtserialport,chardev=nv,name=nv.0",
        "-chardev", f"socket,id=qmp,fd={ch.qmp.fileno()},server=on,wait=off", "-mon", "chardev=qmp,mode=control",
        *vmnet.qemu_args(ch.net),
    ]


def _kvm_groups() -> list[int]:
    try:
        import grp
        return [grp.getgrnam("kvm").gr_gid]
    except KeyError:
        return []


def _enter_and_drop(netns: str | None, groups: list[int]) -> None:
    """Between fork and exec: join the container's netns while still root, then become the QEMU user."""
    _pdeathsig()
    if netns:
        fd = os.open(netns, os.O_RDONLY)
        if _libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            os._exit(121)
        os.close(fd)
    os.setgroups(groups)
    os.setresgid(QEMU_UID, QEMU_UID, QEMU_UID)
    os.setresuid(QEMU_UID, QEMU_UID, QEMU_UID)
    _libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS


def start_qemu(p: Plan, vmdir: Path, ch: Channels, kernel: Path, initrd: Path,
               netns: str | None) -> subprocess.Popen:
    # QEMU lives in the container's network namespace (the taps are there too, see net.py); with no NIC
    # (--network none) the guest has loopback only.
    args = qemu_args(p, ch, kernel, initrd)
    groups = _kvm_groups() if accel.describe()["accelerator"] == "kvm" else []
    log = open(vmdir / "qemu.log", "wb")
    try:
        # one malloc arena: QEMU's threads otherwise each grow their own, ~10 MB of host RAM per VM
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MALLOC_ARENA_MAX": os.environ.get("NANOVISOR_QEMU_ARENAS", "1")}
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                pass_fds=ch.vm_fds(),
                                preexec_fn=lambda: _enter_and_drop(netns, groups), start_new_session=True)
    finally:
        log.close()
