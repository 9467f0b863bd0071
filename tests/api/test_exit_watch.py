"""serve notices container exits by itself (one watcher for all containers): a restart policy is carried out
again and again without any client asking about the container, and a container started by the embedded
CLI on the same root is shown by `docker ps` and dropped from it once it exits."""

from __future__ import annotations

import time

from nvtest import run_cli


def _die_events(client, name: str, since: float) -> list[dict]:
    """The die events of a container so far (reading events never looks at a container's state)."""
    return list(client.api.events(since=since, until=time.time(), decode=True,
                                  filters={"container": name, "event": "die"}))


def test_restart_policy_runs_without_anyone_asking(client, docker, image, name):
    since = time.time() - 1
    assert docker("run", "-d", "--name", name, "--restart", "on-failure:2", image, "sh", "-c",
                  "exit 3").returncode == 0
    try:
        deadline = time.monotonic() + 90
        while len(_die_events(client, name, since)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [e["Actor"]["Attributes"]["exitCode"] for e in _die_events(client, name, since)] == ["3"] * 3
        state = client.api.inspect_container(name)
        assert (state["State"]["Status"], state["State"]["ExitCode"], state["RestartCount"]) == ("exited", 3, 2)
    finally:
        docker("rm", "-f", name)


def test_ps_shows_a_container_the_cli_started_until_it_exits(docker, nv_root, image, name):
    started = run_cli(nv_root, "run", "-d", "--name", name, "--network", "none", image, "sleep", "2")
    assert started.returncode == 0, started.stderr
    try:
        assert name in docker("ps", "--format", "{{.Names}}").stdout.split()
        assert docker("wait", name).stdout.strip() == "0"
        assert name not in docker("ps", "--format", "{{.Names}}").stdout.split()
        assert docker("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "exited"
    finally:
        docker("rm", "-f", name)
