"""build_spec / build_exec_process under real runc: a busybox rootfs, Docker's defaults checked from inside
the container the way a user would (/proc/self/status, id, mount, the cgroup files)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from nanovisor.bundle.etcfiles import hosts_file, parse_extra_hosts
from nanovisor.errors import InvalidParameter
from nanovisor.runtime import spec_caps
from nanovisor.runtime.spec import SpecInput, build_exec_process, build_spec, merge_config

RUNC = shutil.which("runc")
BUSYBOX = "/bin/busybox"
TINI = "/usr/bin/tini-static"
CGROUP_PARENT = f"/nanovisor-spectest-{os.getpid()}"

pytestmark = pytest.mark.skipif(not RUNC or os.geteuid() != 0 or not os.path.exists(BUSYBOX),
                                reason="needs root, runc and busybox-static (scripts/install.sh)")

PASSWD = ("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
          "alice:x:1000:1000:alice:/home/alice:/bin/sh\n")
GROUP = "root:x:0:\nstaff:x:50:alice\nalice:x:1000:\nnogroup:x:65534:\n"


def caps_mask(caps) -> int:
    return sum(1 << spec_caps.KNOWN_CAPS.index(c) for c in caps)


@pytest.fixture(scope="module")
def base_rootfs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/alice"):
        (root / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    os.chmod(root / "tmp", 0o1777)
    yield root
    for ctl in Path("/sys/fs/cgroup").iterdir():
        leftover = ctl / CGROUP_PARENT.lstrip("/")
        if leftover.is_dir():
            leftover.rmdir()


class Bundle:
    """One container: a private copy of the rootfs, config.json, runc state; always deleted."""

    def __init__(self, base: Path, tmp: Path):
        self.id = "spec-" + uuid.uuid4().hex[:12]
        self.dir = tmp / "bundle"
        self.state = tmp / "state"
        self.rootfs = self.dir / "rootfs"
        shutil.copytree(base, self.rootfs, symlinks=True)
        self.spec: dict = {}

    def build(self, body: dict, host_config: dict | None = None, mounts=(), netns: str | None = None,
              image: dict | None = None, **extra) -> dict:
        config = merge_config(image or {"Env": ["PATH=/bin"]}, {"Hostname": "spectest", **body})
        self.spec = build_spec(SpecInput(self.id, config, host_config or {}, str(self.rootfs), list(mounts),
                                         netns, f"{CGROUP_PARENT}/{self.id}", **extra))
        (self.dir / "config.json").write_text(json.dumps(self.spec))
        return self.spec

    def runc(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([RUNC, "--root", str(self.state), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120, **kw)

    def run(self, body: dict, host_config: dict | None = None, **kw) -> subprocess.CompletedProcess:
        self.build(body, host_config, **kw)
        return self.runc("run", "-b", str(self.dir), self.id)

    def delete(self) -> None:
        if self.state.exists():
            self.runc("delete", "-f", self.id)


@pytest.fixture
def bundle(base_rootfs, tmp_path):
    b = Bundle(base_rootfs, tmp_path)
    yield b
    b.delete()


def sh(script: str) -> dict:
    return {"Cmd": ["sh", "-c", script]}


def status_field(output: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith(name + ":"))


# capabilities --------------------------------------------------------------------------------------------
def test_default_capabilities(bundle):
    out = bundle.run(sh("cat /proc/self/status"))
    assert out.returncode == 0, out.stderr
    want = caps_mask(spec_caps.DEFAULT_CAPS)
    assert int(status_field(out.stdout, "CapEff"), 16) == want
    assert int(status_field(out.stdout, "CapBnd"), 16) == want
    assert int(status_field(out.stdout, "CapInh"), 16) == 0


def test_cap_drop_all_add_one(bundle):
    out = bundle.run(sh("cat /proc/self/status; chown 1000 /tmp && echo chown-ok"),
                     {"CapDrop": ["ALL"], "CapAdd": ["net_admin"]})
    assert int(status_field(out.stdout, "CapEff"), 16) == caps_mask(["CAP_NET_ADMIN"])
    assert "chown-ok" not in out.stdout


def test_cap_drop_chown_is_enforced(bundle):
    out = bundle.run(sh("chown 1000 /tmp && echo chown-ok"), {"CapDrop": ["CAP_CHOWN"]})
    assert "chown-ok" not in out.stdout and "Operation not permitted" in out.stderr


def test_unknown_capability_is_rejected(bundle):
    with pytest.raises(InvalidParameter, match='unknown capability: "CAP_NOPE"'):
        bundle.build(sh("true"), {"CapAdd": ["NOPE"]})


def test_privileged(bundle):
    host_dev = next(d for d in ("/dev/loop0", "/dev/kmsg", "/dev/tty0", "/dev/fuse") if os.path.exists(d))
    out = bundle.run(sh("cat /proc/self/status; grep ' /sys ' /proc/self/mountinfo; "
                        f"grep -c . /proc/timer_list; ls {host_dev} && echo has-host-dev"), {"Privileged": True})
    assert out.returncode == 0, out.stderr
    assert int(status_field(out.stdout, "CapEff"), 16) == caps_mask(spec_caps.host_bounding() & set(spec_caps.all_caps()))
    assert int(status_field(out.stdout, "Seccomp"), 10) == 0
    sys_line = next(line for line in out.stdout.splitlines() if " /sys " in line)
    assert " rw," in sys_line
    assert "has-host-dev" in out.stdout  # all host devices
    lines = out.stdout.splitlines()
    assert int(lines[lines.index(sys_line) + 1]) > 0  # /proc/timer_list not masked


# filesystem ----------------------------------------------------------------------------------------------
def test_masked_and_readonly_paths(bundle):
    out = bundle.run(sh("wc -c < /proc/timer_list; wc -c < /proc/keys; ls /sys/firmware | wc -l; "
                        "echo 1 > /proc/sys/kernel/ns_last_pid || echo proc-sys-ro; "
                        "echo x > /proc/sysrq-trigger || echo sysrq-ro; touch /sys/x || echo sys-ro"))
    lines = out.stdout.split()
    assert lines[:3] == ["0", "0", "0"]
    assert "proc-sys-ro" in lines and "sysrq-ro" in lines and "sys-ro" in lines


def test_readonly_rootfs_with_tmpfs(bundle):
    out = bundle.run(sh("touch /newfile || echo root-ro; touch /dev/shm/x && echo shm-rw; "
                        "touch /scratch/x && echo scratch-rw; grep ' /scratch ' /proc/self/mountinfo"),
                     {"ReadonlyRootfs": True, "Tmpfs": {"/scratch": "size=1m,mode=1777"}})
    assert "root-ro" in out.stdout and "Read-only file system" in out.stderr
    assert "shm-rw" in out.stdout and "scratch-rw" in out.stdout
    mount_line = next(line for line in out.stdout.splitlines() if " /scratch " in line)
    assert "size=1024k" in mount_line and "noexec" in mount_line and "nosuid" in mount_line


def test_shm_size_and_default_mounts(bundle):
    out = bundle.run(sh("cat /proc/self/mountinfo"), {"ShmSize": 128 * 1024 * 1024})
    by_dest = {line.split()[4]: line for line in out.stdout.splitlines()}
    assert "size=131072k" in by_dest["/dev/shm"]
    assert "ptmxmode=666" in by_dest["/dev/pts"] and "gid=5" in by_dest["/dev/pts"]
    assert by_dest["/sys"].split()[5].startswith("ro") and "/dev/mqueue" in by_dest


def test_engine_mounts_and_hosts_file(bundle, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text(hosts_file("spectest", ["10.88.0.5"], parse_extra_hosts(["db:10.88.0.9"])))
    mounts = [{"destination": "/etc/hosts", "type": "bind", "source": str(hosts), "options": ["rbind", "rprivate"]}]
    out = bundle.run(sh("cat /etc/hosts"), mounts=mounts)
    assert "10.88.0.5\tspectest" in out.stdout and "10.88.0.9\tdb" in out.stdout
    assert out.stdout.startswith("127.0.0.1\tlocalhost\n")


# process -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("user,group_add,expect", [
    ("", [], "uid=0(root) gid=0(root) groups=0(root)"),
    ("alice", [], "uid=1000(alice) gid=1000(alice) groups=50(staff),1000(alice)"),
    ("1000:50", [], "uid=1000(alice) gid=50(staff) groups=50(staff)"),
    ("nobody", ["staff", "4242"], "uid=65534(nobody) gid=65534(nogroup) groups=50(staff),4242,65534(nogroup)"),
])
def test_user_and_groups(bundle, user, group_add, expect):
    """(the kernel keeps supplementary groups sorted, so `id` lists them in numeric order)"""
    out = bundle.run({"Cmd": ["id"], "User": user}, {"GroupAdd": group_add})
    assert out.stdout.strip() == expect, out.stderr


def test_non_root_user_has_no_effective_caps(bundle):
    out = bundle.run({**sh("cat /proc/self/status"), "User": "alice"})
    assert int(status_field(out.stdout, "CapEff"), 16) == 0
    assert int(status_field(out.stdout, "CapBnd"), 16) == caps_mask(spec_caps.DEFAULT_CAPS)


def test_env_workdir_hostname(bundle):
    out = bundle.run({**sh("env | sort; pwd; hostname; cat /proc/sys/kernel/domainname"), "Env": ["FOO=bar"], "WorkingDir": "/app/x",
                      "Domainname": "example.org"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "FOO=bar" in lines and "HOSTNAME=spectest" in lines and "PATH=/bin" in lines
    assert not any(line.startswith("TERM=") for line in lines)
    assert lines[-3:] == ["/app/x", "spectest", "example.org"]


def test_no_new_privileges(bundle):
    out = bundle.run(sh("grep NoNewPrivs /proc/self/status"), {"SecurityOpt": ["no-new-privileges:true"]})
    assert out.stdout.split() == ["NoNewPrivs:", "1"]


def test_ulimits_clamped_to_engine_hard_limit(bundle):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    asked = 4096 if hard == resource.RLIM_INFINITY else hard * 100
    expect = asked if hard == resource.RLIM_INFINITY else hard
    out = bundle.run(sh("ulimit -Sn; ulimit -Hn; ulimit -Hc"),
                     {"Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": asked},
                                  {"Name": "core", "Soft": 0, "Hard": 0}]})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["100", str(expect), "0"]


def test_init_is_pid_one(bundle):
    if not os.path.exists(TINI):
        pytest.skip("tini-static (Debian package tini) not installed")
    out = bundle.run(sh("tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/comm"), {"Init": True},
                     init_path=TINI)
    assert out.returncode == 0, out.stderr
    first, comm = out.stdout.splitlines()[:2]
    assert first.startswith("/sbin/docker-init -- sh -c") and comm == "docker-init"


# seccomp -------------------------------------------------------------------------------------------------
def test_seccomp_default_denies_namespaces_and_mount(bundle):
    out = bundle.run(sh("unshare -U true || echo unshare-denied; mkdir /mnt; "
                        "mount -t tmpfs none /mnt || echo mount-denied; "
                        "ls / > /dev/null && sleep 0 && echo normal-ok; grep Seccomp: /proc/self/status"))
    assert "unshare-denied" in out.stdout and "mount-denied" in out.stdout and "normal-ok" in out.stdout
    assert "Seccomp:\t2" in out.stdout


def test_seccomp_unconfined_allows_user_namespace(bundle):
    out = bundle.run(sh("unshare -U true && echo unshare-ok; grep Seccomp: /proc/self/status"),
                     {"SecurityOpt": ["seccomp=unconfined"]})
    assert "unshare-ok" in out.stdout and "Seccomp:\t0" in out.stdout


def test_sys_admin_unlocks_mount(bundle):
    out = bundle.run(sh("mkdir /mnt && mount -t tmpfs none /mnt && echo mount-ok"), {"CapAdd": ["SYS_ADMIN"]})
    assert "mount-ok" in out.stdout, out.stderr


def test_custom_seccomp_profile(bundle):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    out = bundle.run(sh("mkdir /tmp/d || echo mkdir-denied; echo still-running"),
                     {"SecurityOpt": ["seccomp=" + json.dumps(profile)]})
    assert "mkdir-denied" in out.stdout and "still-running" in out.stdout


# cgroups -------------------------------------------------------------------------------------------------
def test_memory_cpu_pids_limits_visible_in_cgroup(bundle):
    out = bundle.run(sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                        "/sys/fs/cgroup/memory/memory.soft_limit_in_bytes "
                        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
                        "/sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/pids/pids.max"),
                     {"Memory": 64 << 20, "MemoryReservation": 32 << 20, "NanoCpus": 500_000_000,
                      "CpuShares": 512, "PidsLimit": 10})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(64 << 20), str(32 << 20), "50000", "100000", "512", "10"]


def test_pids_limit_is_enforced(bundle):
    out = bundle.run(sh("for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait; echo done"), {"PidsLimit": 4})
    assert "can't fork" in out.stderr or "Resource temporarily unavailable" in out.stderr


def test_unlimited_pids(bundle):
    out = bundle.run(sh("cat /sys/fs/cgroup/pids/pids.max"), {"PidsLimit": 0})
    assert out.stdout.strip() == "max"


# devices, network, sysctls -------------------------------------------------------------------------------
def test_added_device_and_default_device_cgroup(bundle):
    out = bundle.run(sh("ls -l /dev/mynull; echo hi > /dev/mynull && echo write-ok; "
                        "mknod /dev/myloop b 7 0 && (head -c1 /dev/myloop || echo loop-denied)"),
                     {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                                   "CgroupPermissions": "rwm"}]})
    assert out.stdout.startswith("crw") and " 1,   3 " in out.stdout.splitlines()[0]
    assert "write-ok" in out.stdout and "loop-denied" in out.stdout


def test_network_none_and_sysctls(bundle):
    out = bundle.run(sh("cat /proc/net/dev | tail -n +3 | cut -d: -f1; cat /proc/sys/net/ipv4/ip_forward; "
                        "cat /proc/sys/net/ipv4/ping_group_range; cat /proc/sys/kernel/shmmni"),
                     {"NetworkMode": "none", "Sysctls": {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["lo", "1", "0", "2147483647", "1234"]


def test_host_namespace_sysctl_rejected(bundle):
    with pytest.raises(InvalidParameter, match="not allowed in host network namespace"):
        bundle.build(sh("true"), {"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}})


# exec ----------------------------------------------------------------------------------------------------
def test_exec_process_runs_in_container(bundle, tmp_path):
    bundle.build({"Cmd": ["sleep", "300"], "Env": ["FOO=container"], "WorkingDir": "/srv"},
                 {"CapAdd": ["NET_ADMIN"]})
    # the container keeps runc's stdio: give it /dev/null so `create` returns at once
    created = subprocess.run([RUNC, "--root", str(bundle.state), "create", "-b", str(bundle.dir), bundle.id],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             timeout=120)
    assert created.returncode == 0
    assert bundle.runc("start", bundle.id).returncode == 0

    def exec_(body: dict) -> subprocess.CompletedProcess:
        proc = build_exec_process(bundle.spec, body, str(bundle.rootfs))
        path = tmp_path / f"process-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(proc))
        return bundle.runc("exec", "--process", str(path), bundle.id)

    out = exec_(sh("id; pwd; echo $FOO $BAR; grep CapEff /proc/self/status"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "uid=0(root) gid=0(root) groups=0(root)" and lines[1] == "/srv"
    assert lines[2] == "container"
    assert int(lines[3].split()[1], 16) == caps_mask(spec_caps.DEFAULT_CAPS + ["CAP_NET_ADMIN"])

    out = exec_({**sh("id; pwd; echo $FOO $BAR"), "User": "alice", "Env": ["BAR=exec", "FOO=over"],
                 "WorkingDir": "/tmp"})
    assert out.stdout.splitlines() == ["uid=1000(alice) gid=1000(alice) groups=50(staff),1000(alice)", "/tmp",
                                       "over exec"]


def test_tty_terminal_console_size_and_term(bundle, tmp_path):
    """Tty: runc hands the pty master over a console socket (as conmon receives it)."""
    bundle.build({**sh("stty size; echo TERM=$TERM; tty"), "Tty": True}, {"ConsoleSize": [33, 101]})
    sock_path = str(tmp_path / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(sock_path)
        server.listen(1)
        server.settimeout(60)
        created = subprocess.Popen([RUNC, "--root", str(bundle.state), "create", "--console-socket", sock_path,
                                    "-b", str(bundle.dir), bundle.id], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        conn, _ = server.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        assert created.wait(timeout=60) == 0, created.stderr.read()
    master = fds[0]
    try:
        assert bundle.runc("start", bundle.id).returncode == 0
        output = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO once the container side of the pty is closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
    lines = output.decode().replace("\r", "").splitlines()
    assert lines[:3] == ["33 101", "TERM=xterm", "/dev/pts/0"]


DOCKER_CLI_HOST_CONFIG = json.loads("""{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},
"NetworkMode":"none","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,
"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],
"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,
"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,
"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"",
"BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],
"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"",
"CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,
"MemorySwappiness":null,"OomKillDisable":null,"PidsLimit":null,"Ulimits":[],"CpuCount":0,"CpuPercent":0,
"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null,"Init":null}""")


def test_full_docker_cli_host_config_runs(bundle):
    """What `docker run --network none` posts, nulls and zeros included, gives Docker's defaults."""
    out = bundle.run(sh("grep -E '^(CapEff|Seccomp):' /proc/self/status; echo ok"), DOCKER_CLI_HOST_CONFIG)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["CapEff:", format(caps_mask(spec_caps.DEFAULT_CAPS), "016x"), "Seccomp:", "2",
                                  "ok"]
