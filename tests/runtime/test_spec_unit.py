"""Docker's rules that need no kernel: config merging, capability arithmetic, seccomp conditions, option
parsing and validation messages. What they do to a real container is checked in test_spec_runc.py."""

from __future__ import annotations

import json
import os

import pytest

from nanovisor.errors import InvalidParameter
from nanovisor.runtime import seccomp, spec_caps, spec_resources
from nanovisor.runtime.spec import SpecInput, build_exec_process, build_spec, merge_config, parse_security_opt
from nanovisor.runtime.spec_config import replace_or_append_env
from nanovisor.runtime.spec_mounts import merge_tmpfs_options

IMAGE = {
    "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "KEEP=image"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "Entrypoint": ["/docker-entrypoint.sh"],
    "WorkingDir": "/srv",
    "User": "www",
    "Labels": {"maintainer": "img", "shared": "image"},
    "ExposedPorts": {"80/tcp": {}},
    "Volumes": {"/data": {}},
    "StopSignal": "SIGQUIT",
    "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Retries": 3},
    "OnBuild": ["RUN echo nope"],
}


# merge_config ------------------------------------------------------------------------------------------
def test_image_defaults_fill_an_empty_create():
    cfg = merge_config(IMAGE, {"Image": "nginx", "Hostname": "h1"})
    assert cfg["Cmd"] == IMAGE["Cmd"]
    assert cfg["Entrypoint"] == IMAGE["Entrypoint"]
    assert cfg["Env"] == IMAGE["Env"]
    assert cfg["WorkingDir"] == "/srv" and cfg["User"] == "www" and cfg["StopSignal"] == "SIGQUIT"
    assert cfg["ExposedPorts"] == {"80/tcp": {}} and cfg["Volumes"] == {"/data": {}}
    assert cfg["Healthcheck"]["Retries"] == 3
    assert cfg["OnBuild"] is None and cfg["Image"] == "nginx" and cfg["Hostname"] == "h1"


def test_env_merged_by_key_container_wins():
    cfg = merge_config(IMAGE, {"Env": ["LANG=fr_FR", "NEW=1"]})
    assert cfg["Env"] == ["LANG=fr_FR", "NEW=1", "PATH=/usr/bin:/bin", "KEEP=image"]


def test_cmd_given_keeps_image_entrypoint():
    cfg = merge_config(IMAGE, {"Cmd": ["nginx", "-t"]})
    assert cfg["Entrypoint"] == ["/docker-entrypoint.sh"] and cfg["Cmd"] == ["nginx", "-t"]


def test_explicit_entrypoint_resets_image_cmd():
    cfg = merge_config(IMAGE, {"Entrypoint": ["/bin/sh"]})
    assert cfg["Entrypoint"] == ["/bin/sh"] and cfg["Cmd"] is None


def test_empty_string_entrypoint_clears_image_entrypoint():
    cfg = merge_config(IMAGE, {"Entrypoint": [""], "Cmd": ["ls"]})
    assert cfg["Entrypoint"] is None and cfg["Cmd"] == ["ls"]
    with pytest.raises(InvalidParameter, match="no command specified"):
        merge_config(IMAGE, {"Entrypoint": [""]})


def test_empty_list_entrypoint_takes_image_cmd_but_no_entrypoint():
    cfg = merge_config(IMAGE, {"Entrypoint": []})
    assert cfg["Entrypoint"] == [] and cfg["Cmd"] == IMAGE["Cmd"]


def test_string_cmd_is_a_one_element_list():
    cfg = merge_config({}, {"Cmd": "top"})
    assert cfg["Cmd"] == ["top"]


def test_no_command_at_all():
    with pytest.raises(InvalidParameter, match="no command specified"):
        merge_config({"Env": ["A=1"]}, {})


def test_labels_ports_volumes_merged():
    cfg = merge_config(IMAGE, {"Labels": {"shared": "mine", "x": "y"}, "ExposedPorts": {"53/udp": {}, "81": {}},
                               "Volumes": {"/logs": {}}, "Cmd": ["x"]})
    assert cfg["Labels"] == {"maintainer": "img", "shared": "mine", "x": "y"}
    assert set(cfg["ExposedPorts"]) == {"53/udp", "81/tcp", "80/tcp"}
    assert set(cfg["Volumes"]) == {"/logs", "/data"}


def test_healthcheck_fields_fill_from_image():
    cfg = merge_config(IMAGE, {"Healthcheck": {"Test": ["CMD", "false"], "Timeout": 1}})
    assert cfg["Healthcheck"] == {"Test": ["CMD", "false"], "Timeout": 1, "Interval": 5_000_000_000, "Retries": 3}


def test_container_fields_and_relative_workdir():
    cfg = merge_config({}, {"Cmd": ["sh"], "Tty": True, "OpenStdin": True, "AttachStdin": True,
                            "StopTimeout": 3, "User": "1000:1000", "Domainname": "example.com"})
    assert cfg["Tty"] and cfg["OpenStdin"] and cfg["AttachStdin"] and not cfg["StdinOnce"]
    assert cfg["StopTimeout"] == 3 and cfg["User"] == "1000:1000" and cfg["Domainname"] == "example.com"
    assert "ExposedPorts" not in cfg and cfg["Volumes"] is None and cfg["Labels"] == {}
    with pytest.raises(InvalidParameter, match="needs to be an absolute path"):
        merge_config({}, {"Cmd": ["sh"], "WorkingDir": "rel/dir"})


def test_replace_or_append_env_unsets_bare_keys():
    assert replace_or_append_env(["PATH=/bin", "HOSTNAME=x"], ["HOSTNAME", "A=1", "PATH=/x"]) == ["PATH=/x", "A=1"]


# capabilities ------------------------------------------------------------------------------------------
def test_default_caps():
    assert spec_caps.tweak([], [], False) == spec_caps.DEFAULT_CAPS
    assert len(spec_caps.DEFAULT_CAPS) == 14


def test_cap_add_drop_with_and_without_prefix():
    caps = spec_caps.tweak(["net_admin", "CAP_SYS_TIME"], ["chown", "CAP_KILL"], False)
    assert "CAP_NET_ADMIN" in caps and "CAP_SYS_TIME" in caps
    assert "CAP_CHOWN" not in caps and "CAP_KILL" not in caps


def test_cap_drop_all_keeps_only_adds():
    assert spec_caps.tweak(["NET_RAW"], ["ALL"], False) == ["CAP_NET_RAW"]


def test_cap_add_all_minus_drops():
    caps = spec_caps.tweak(["all"], ["SYS_ADMIN"], False)
    assert "CAP_SYS_ADMIN" not in caps and "CAP_SYS_MODULE" in caps


def test_unknown_capability_message():
    with pytest.raises(InvalidParameter) as e:
        spec_caps.tweak(["FOO"], [], False)
    assert str(e.value) == 'unknown capability: "CAP_FOO"'


def test_privileged_gets_everything_the_kernel_knows():
    assert spec_caps.tweak([], ["ALL"], True) == list(spec_caps.all_caps())


def test_caps_limited_to_what_the_engine_holds():
    caps = spec_caps.container_caps({"Privileged": True})
    assert set(caps) <= spec_caps.host_bounding()


def test_non_root_gets_bounding_only():
    assert spec_caps.oci_capabilities(["CAP_KILL"], uid=1000) == {"bounding": ["CAP_KILL"]}


# seccomp -----------------------------------------------------------------------------------------------
def _names(oci: dict) -> set[str]:
    return {n for rule in oci.get("syscalls", []) if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
            for n in rule["names"]}


def test_default_seccomp_without_sys_admin():
    oci = seccomp.to_oci(seccomp.default_profile(), spec_caps.DEFAULT_CAPS, ("amd64", "SCMP_ARCH_X86_64"), (6, 1))
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO" and oci["defaultErrnoRet"] == 1
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _names(oci)
    assert {"read", "write", "execve", "arch_prctl", "chroot", "ptrace", "fchmodat2"} <= allowed
    assert not {"mount", "unshare", "setns", "umount2", "reboot", "bpf", "s390_runtime_instr"} & allowed
    clone = [r for r in oci["syscalls"] if r["names"] == ["clone"]]
    assert clone == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]
    clone3 = [r for r in oci["syscalls"] if r["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]


def test_default_seccomp_with_sys_admin_and_old_kernel():
    caps = spec_caps.DEFAULT_CAPS + ["CAP_SYS_ADMIN"]
    oci = seccomp.to_oci(seccomp.default_profile(), caps, ("amd64", "SCMP_ARCH_X86_64"), (4, 4))
    allowed = _names(oci)
    assert {"mount", "unshare", "setns", "clone", "clone3"} <= allowed
    assert "ptrace" not in allowed  # needs kernel 4.8 without CAP_SYS_PTRACE
    assert not any(r["names"] == ["clone3"] and r["action"] == "SCMP_ACT_ERRNO" for r in oci["syscalls"])


def test_seccomp_on_arm64_picks_its_arch_map():
    oci = seccomp.to_oci(seccomp.default_profile(), [], ("arm64", "SCMP_ARCH_AARCH64"), (6, 1))
    assert oci["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in _names(oci) and "set_tls" in _names(oci)


def test_load_profile_forms(tmp_path):
    assert seccomp.load_profile("unconfined") is None
    assert seccomp.load_profile("builtin")["defaultAction"] == "SCMP_ACT_ERRNO"
    custom = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO"}]}
    assert seccomp.load_profile(json.dumps(custom)) == custom
    f = tmp_path / "p.json"
    f.write_text(json.dumps(custom, indent=2))
    sent = seccomp.read_profile_file(str(f))  # the client reads the file, the daemon gets its content
    assert seccomp.to_oci(seccomp.load_profile(sent), []) == {
        "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    with pytest.raises(InvalidParameter, match="Decoding seccomp profile failed"):
        seccomp.load_profile("{not json")
    with pytest.raises(InvalidParameter, match="not a path"):  # the daemon never opens host files
        seccomp.load_profile(str(f))


# options ------------------------------------------------------------------------------------------------
def test_security_opt_parsing():
    assert parse_security_opt(["no-new-privileges"]).no_new_privileges
    assert parse_security_opt(["no-new-privileges:true"]).no_new_privileges
    assert not parse_security_opt(["no-new-privileges=false"]).no_new_privileges
    assert parse_security_opt(["seccomp=unconfined", "apparmor=unconfined", "label=disable"]).seccomp == "unconfined"
    with pytest.raises(InvalidParameter, match='invalid --security-opt 1: "bogus"'):
        parse_security_opt(["bogus"])
    with pytest.raises(InvalidParameter, match='invalid --security-opt 2: "no-new-privileges=maybe"'):
        parse_security_opt(["no-new-privileges=maybe"])


def test_tmpfs_options_merge():
    assert merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", "exec", "size=64m"]) == \
        ["nosuid", "nodev", "rprivate", "exec", "size=64m"]
    assert merge_tmpfs_options(["size=1m", "size=2m", "shared", "rprivate"]) == ["size=2m", "rprivate"]
    with pytest.raises(InvalidParameter, match="invalid tmpfs option"):
        merge_tmpfs_options(["bogus=1"])


@pytest.mark.parametrize("hc,msg", [
    ({"Memory": 1024}, "Minimum memory limit allowed is 6MB"),
    ({"MemorySwap": 10**9}, "You should always set the Memory limit when using Memoryswap limit"),
    ({"Memory": 2 * 10**8, "MemorySwap": 10**8}, "Minimum memoryswap limit should be larger than memory limit"),
    ({"Memory": 10**8, "MemoryReservation": 2 * 10**8}, "Minimum memory limit can not be less than memory reservation"),
    ({"NanoCpus": 10**9, "CpuQuota": 50000}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"NanoCpus": 10**12}, "Range of CPUs is from 0.01 to"),
    ({"CpuPeriod": 10}, "CPU cfs period can not be less than 1ms"),
    ({"OomScoreAdj": 2000}, "Invalid value 2000, range for oom score adj is [-1000, 1000]"),
    ({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}, "invalid ulimit type: bogus"),
    ({"DeviceCgroupRules": ["x 1:2 rwm"]}, "invalid device cgroup rule format: 'x 1:2 rwm'"),
])
def test_resource_validation_messages(hc, msg):
    with pytest.raises(InvalidParameter) as e:
        spec_resources.validate_host_config(hc)
    assert str(e.value).startswith(msg)


def test_resources_mapping():
    res = spec_resources.resources({"Memory": 64 << 20, "NanoCpus": 1_500_000_000, "CpuShares": 1,
                                    "PidsLimit": 0, "CpusetCpus": "0", "MemoryReservation": 32 << 20})
    assert res["memory"]["limit"] == 64 << 20 and res["memory"]["reservation"] == 32 << 20
    assert res["memory"].get("swap") in (None, 128 << 20)
    assert res["cpu"] == {"period": 100000, "quota": 150000, "shares": 2, "cpus": "0"}
    assert res["pids"] == {"limit": -1}


def test_parse_device():
    assert spec_resources.parse_device("/dev/fuse") == {
        "PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}
    assert spec_resources.parse_device("/dev/sda:/dev/xvdc:r")["CgroupPermissions"] == "r"
    assert spec_resources.parse_device("/dev/sda:rw")["PathInContainer"] == "/dev/sda"


def test_missing_device_message():
    with pytest.raises(InvalidParameter) as e:
        spec_resources.linux_devices({"Devices": [{"PathOnHost": "/dev/nope", "PathInContainer": "/dev/nope",
                                                   "CgroupPermissions": "rwm"}]})
    assert str(e.value).startswith('error gathering device information while adding custom device "/dev/nope"')


def test_sysctl_checks():
    with pytest.raises(InvalidParameter, match="is not in a separate kernel namespace"):
        spec_resources.sysctls({"Sysctls": {"kernel.panic": "1"}}, True, True, True, True)
    with pytest.raises(InvalidParameter, match="not allowed in host network namespace"):
        spec_resources.sysctls({"Sysctls": {"net.ipv4.ip_forward": "1"}}, False, False, True, True)
    out = spec_resources.sysctls({"Sysctls": {"kernel.shmmax": "1000"}}, False, False, True, True)
    assert out == {"kernel.shmmax": "1000"}


# whole spec (no runtime needed) -------------------------------------------------------------------------
@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/a:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nalice:x:1000:\n")
    return str(tmp_path)


def _spec(rootfs, hc=None, cfg=None, **kw):
    config = merge_config({"Env": ["PATH=/bin"]}, {"Cmd": ["sh"], "Hostname": "box", **(cfg or {})})
    return build_spec(SpecInput("c1", config, hc or {}, rootfs, kw.pop("mounts", []), kw.pop("netns", None),
                                "/nanovisor/c1", **kw))


def test_spec_defaults(rootfs):
    spec = _spec(rootfs)
    assert spec["hostname"] == "box" and spec["root"] == {"path": rootfs, "readonly": False}
    assert spec["process"]["env"] == ["PATH=/bin", "HOSTNAME=box"]
    assert spec["process"]["cwd"] == "/" and spec["process"]["terminal"] is False
    assert [m["destination"] for m in spec["mounts"]] == \
        ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    assert "size=67108864" in spec["mounts"][-1]["options"]
    types = [n["type"] for n in spec["linux"]["namespaces"]]
    assert types[:1] == ["mount"] and "network" not in types and {"uts", "pid", "ipc"} <= set(types)
    assert spec["linux"]["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert "/proc/kcore" in spec["linux"]["maskedPaths"] and "/proc/sys" in spec["linux"]["readonlyPaths"]
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"


def test_spec_user_mount_overrides_default_and_sorts(rootfs):
    mounts = [{"destination": "/a/b", "type": "bind", "source": "/tmp", "options": ["rbind"]},
              {"destination": "/dev/shm", "type": "bind", "source": "/tmp", "options": ["rbind"]},
              {"destination": "/a", "type": "bind", "source": "/tmp", "options": ["rbind"]}]
    dests = [m["destination"] for m in _spec(rootfs, mounts=mounts)["mounts"]]
    assert dests.count("/dev/shm") == 1 and dests[-3:] == ["/a", "/a/b", "/dev/shm"]


def test_spec_tty_env_and_console_size(rootfs):
    spec = _spec(rootfs, {"ConsoleSize": [30, 100]}, {"Tty": True, "Env": ["TERM=vt100", "A=1"]})
    assert spec["process"]["terminal"] and spec["process"]["consoleSize"] == {"height": 30, "width": 100}
    assert spec["process"]["env"] == ["PATH=/bin", "HOSTNAME=box", "TERM=vt100", "A=1"]


def test_spec_host_modes(rootfs):
    spec = _spec(rootfs, {"PidMode": "host", "IpcMode": "host", "UTSMode": "host", "Init": True})
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["mount"]
    assert "hostname" not in spec
    assert spec["process"]["args"] == ["sh"]  # no init outside a private pid namespace
    with pytest.raises(InvalidParameter, match="invalid IPC mode: bogus"):
        _spec(rootfs, {"IpcMode": "bogus"})


def test_spec_network_none_gets_fresh_namespace(rootfs):
    spec = _spec(rootfs, {"NetworkMode": "none"})
    assert {"type": "network"} in spec["linux"]["namespaces"]
    assert spec["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "0"


def test_spec_privileged(rootfs):
    spec = _spec(rootfs, {"Privileged": True, "CapDrop": ["ALL"]})
    assert "seccomp" not in spec["linux"] and "maskedPaths" not in spec["linux"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sys_mount["options"]
    assert len(spec["process"]["capabilities"]["effective"]) > 30
    custom = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []})
    spec = _spec(rootfs, {"Privileged": True, "SecurityOpt": ["seccomp=" + custom]})
    assert spec["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_ALLOW"}
    assert "seccomp" not in _spec(rootfs, {"SecurityOpt": ["seccomp=unconfined"]})["linux"]


def test_spec_readonly_rootfs_marks_default_mounts(rootfs):
    spec = _spec(rootfs, {"ReadonlyRootfs": True, "Tmpfs": {"/run": ""}})
    by_dest = {m["destination"]: m for m in spec["mounts"]}
    assert spec["root"]["readonly"] and "ro" in by_dest["/sys/fs/cgroup"]["options"]
    assert "ro" not in by_dest["/dev/shm"]["options"] and "ro" not in by_dest["/run"]["options"]
    assert by_dest["/run"]["options"] == ["noexec", "nosuid", "nodev", "rprivate"]


def test_spec_unknown_user(rootfs):
    with pytest.raises(InvalidParameter, match="unable to find user bob: no matching entries in passwd file"):
        _spec(rootfs, cfg={"User": "bob"})


def test_spec_workdir_created(rootfs):
    spec = _spec(rootfs, cfg={"WorkingDir": "/work/dir"})
    assert spec["process"]["cwd"] == "/work/dir"
    assert os.path.isdir(os.path.join(rootfs, "work/dir"))


def test_exec_process_inherits_and_overrides(rootfs):
    spec = _spec(rootfs, {"CapAdd": ["NET_ADMIN"], "SecurityOpt": ["no-new-privileges"]},
                 {"Env": ["FOO=container"], "WorkingDir": "/srv", "Tty": True})
    proc = build_exec_process(spec, {"Cmd": ["id"], "Env": ["FOO=exec"]}, rootfs)
    assert proc["args"] == ["id"] and proc["cwd"] == "/srv" and not proc["terminal"]
    assert "FOO=exec" in proc["env"] and "TERM=xterm" not in proc["env"]
    assert "CAP_NET_ADMIN" in proc["capabilities"]["effective"] and proc["noNewPrivileges"]
    proc = build_exec_process(spec, {"Cmd": ["id"], "User": "alice", "Tty": True, "WorkingDir": "/"}, rootfs)
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000]}
    assert proc["capabilities"] == {"bounding": spec["process"]["capabilities"]["bounding"]}
    assert "TERM=xterm" in proc["env"] and proc["cwd"] == "/"
    with pytest.raises(InvalidParameter, match="No exec command specified"):
        build_exec_process(spec, {"Cmd": []}, rootfs)
