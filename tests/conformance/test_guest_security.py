"""Process security is the same in a VM guest as in a process container (issue 11): the guest agent applies the
spec's capabilities, no_new_privs, seccomp profile, rlimits and read-only/masked paths, so `--cap-drop`,
`no-new-privileges`, `--ulimit` and Docker's default seccomp profile mean the same in both isolations — the VM
is a second wall, not the only one."""

from __future__ import annotations

import pytest
from nvtest import IMAGE

pytestmark = pytest.mark.vm

FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
# what a user reads from inside: the process' own status, its open-files limit, the masked and read-only paths
PROBE = ("grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; grep 'Max open files' /proc/self/limits; "
         "awk '$2 == \"/proc/sys\" {split($4, o, \",\"); print \"/proc/sys\", o[1]} "
         "$2 == \"/sys/firmware\" {print \"masked /sys/firmware\", $3}' /proc/mounts")


def probe(nv, iso: str, *flags: str, user_args: tuple[str, ...] = ("sh", "-c", PROBE)) -> dict[str, str]:
    r = nv("run", "--rm", f"--isolation={iso}", "--network", "none", *flags, IMAGE, *user_args)
    assert r.returncode == 0, r.stderr
    return _fields(r.stdout)


def _fields(out: str) -> dict[str, str]:
    seen = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if key in FIELDS and sep:
            seen[key] = value.strip()
        elif line.startswith("Max open files"):
            seen["nofile"] = " ".join(line.split()[3:5])
        else:
            seen[line] = "yes"
    return seen


@pytest.mark.parametrize("flags", [
    (),
    ("--cap-drop", "ALL"),
    ("--security-opt", "no-new-privileges"),
    ("--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "-u", "1000:1000", "--ulimit", "nofile=512:1024"),
    ("--security-opt", "seccomp=unconfined", "--cap-add", "SYS_PTRACE"),
], ids=["defaults", "cap-drop-all", "no-new-privileges", "user-caps-ulimit", "unconfined"])
def test_status_identical_in_both_isolations(nv, flags):
    process, vm = probe(nv, "process", *flags), probe(nv, "vm", *flags)
    assert set(FIELDS) <= set(process), process
    assert {"/proc/sys ro", "masked /sys/firmware tmpfs"} <= set(process), process
    if "--ulimit" in flags:
        assert process["nofile"] == "512 1024"
    else:  # without --ulimit each inherits its runtime's defaults: the host's, or the guest kernel's
        del process["nofile"], vm["nofile"]
    assert vm == process
    if "seccomp=unconfined" in flags:
        assert process["Seccomp"] == "0"
    else:
        assert process["Seccomp"] == "2"  # filter mode: Docker's default profile
    if flags[:2] == ("--cap-drop", "ALL") and len(flags) == 2:
        assert process["CapEff"] == process["CapBnd"] == "0000000000000000"
    assert process["NoNewPrivs"] == ("1" if "no-new-privileges" in flags else "0")


def test_syscall_blocked_by_the_default_profile_fails_in_both(nv):
    """personality(PER_LINUX | ADDR_NO_RANDOMIZE) needs no capability, so only the seccomp profile refuses it
    (Docker's allows a handful of personality values, not this one); unconfined, it works in both."""
    cmd = ("linux64", "-R", "true")
    for iso in ("process", "vm"):
        r = nv("run", "--rm", f"--isolation={iso}", "--network", "none", IMAGE, *cmd)
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, (iso, r.stderr)
        r = nv("run", "--rm", f"--isolation={iso}", "--network", "none", "--security-opt", "seccomp=unconfined",
               IMAGE, *cmd)
        assert r.returncode == 0, (iso, r.stderr)


def test_exec_gets_the_containers_security(nv):
    """An exec'd process gets the container's seccomp filter and its capabilities, as under runc."""
    got = {}
    for iso in ("process", "vm"):
        cid = nv("run", "-d", f"--isolation={iso}", "--network", "none", "--cap-drop", "ALL", "--cap-add", "KILL",
                 "--security-opt", "no-new-privileges", IMAGE, "sleep", "1000").stdout.strip()
        try:
            r = nv("exec", cid, "sh", "-c", PROBE)
            assert r.returncode == 0, r.stderr
            got[iso] = _fields(r.stdout)
            del got[iso]["nofile"]
            r = nv("exec", cid, "linux64", "-R", "true")
            assert r.returncode != 0 and "Operation not permitted" in r.stderr, (iso, r.stderr)
        finally:
            nv("rm", "-f", cid)
    assert got["vm"] == got["process"]
    assert got["process"]["Seccomp"] == "2" and got["process"]["NoNewPrivs"] == "1"
    assert got["process"]["CapBnd"] == "0000000000000020"  # CAP_KILL alone
