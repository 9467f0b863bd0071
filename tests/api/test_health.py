"""Healthchecks through the real docker CLI and docker-py, in both isolations: --health-* flags and an image's
HEALTHCHECK, State.Health with its streak and log, `docker ps` "(healthy)", the health filter, health_status
events, timeouts, --no-healthcheck, and docker-compose's `depends_on: condition: service_healthy`."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from nvtest import wait_for

ISOLATIONS = [pytest.param("process", id="process"), pytest.param("vm", id="vm", marks=pytest.mark.vm)]


def _health(docker, name) -> dict:
    out = docker("inspect", "-f", "{{json .State.Health}}", name).stdout.strip()
    return json.loads(out) if out and out != "null" else {}


@pytest.mark.parametrize("iso", ISOLATIONS)
def test_health_cmd_flags_status_streak_filter_and_events(docker, image, name, iso):
    since = str(int(time.time()))
    r = docker("run", "-d", "--name", name, f"--isolation={iso}", "--health-cmd", "test -f /tmp/ok",
               "--health-interval", "1s", "--health-retries", "2", "--health-timeout", "5s", image, "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        assert _health(docker, name)["Status"] == "starting"
        wait_for(lambda: _health(docker, name).get("FailingStreak", 0) >= 2, timeout=90)
        assert _health(docker, name)["Status"] == "unhealthy"
        assert "(unhealthy)" in docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout
        assert docker("exec", name, "touch", "/tmp/ok").returncode == 0
        wait_for(lambda: _health(docker, name).get("Status") == "healthy", timeout=90)
        health = _health(docker, name)
        assert health["FailingStreak"] == 0
        assert 1 <= len(health["Log"]) <= 5 and health["Log"][-1]["ExitCode"] == 0
        assert "(healthy)" in docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout
        assert docker("ps", "-q", "--filter", "health=healthy", "--filter", f"name={name}").stdout.strip()
        assert not docker("ps", "-q", "--filter", "health=unhealthy", "--filter", f"name={name}").stdout.strip()
        events = docker("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter",
                        f"container={name}", "--format", "{{.Action}}").stdout.split("\n")
        assert "health_status: unhealthy" in events and "health_status: healthy" in events
    finally:
        docker("rm", "-f", name)


def test_image_healthcheck_timeout_and_no_healthcheck(client, image, name, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {image}\nHEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD sleep 5\n")
    built, _ = client.images.build(path=str(tmp_path), tag=f"health-{name}:latest", rm=True)
    try:
        c = client.containers.run(built.id, ["sleep", "600"], name=name, detach=True)
        try:
            def unhealthy():
                c.reload()
                return (c.attrs["State"].get("Health") or {}).get("Status") == "unhealthy"
            wait_for(unhealthy, timeout=60)
            last = c.attrs["State"]["Health"]["Log"][-1]
            assert last["ExitCode"] == -1 and "exceeded timeout" in last["Output"]
        finally:
            c.remove(force=True)
        c = client.containers.run(built.id, ["sleep", "600"], name=name + "-off", detach=True,
                                  healthcheck={"Test": ["NONE"]})
        try:
            assert "Health" not in c.attrs["State"]
            assert c.id in [x.id for x in client.containers.list(filters={"health": "none"})]
        finally:
            c.remove(force=True)
    finally:
        client.images.remove(built.id, force=True)


def test_bad_health_filter_is_a_400(client):
    import docker as dockerpy

    with pytest.raises(dockerpy.errors.APIError) as err:
        client.containers.list(filters={"health": "sick"})
    assert err.value.status_code == 400


COMPOSE_HEALTHY = """
version: "2.4"
services:
  db:
    image: {image}
    command: sh -c 'sleep 2; touch /tmp/ready; exec sleep 600'
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      retries: 30
  app:
    image: {image}
    command: sleep 600
    depends_on:
      db:
        condition: service_healthy
"""


def test_compose_waits_for_service_healthy(docker_env, image, tmp_path, docker):
    compose = shutil.which("docker-compose")
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_HEALTHY.format(image=image))
    project = f"nvh{tmp_path.name[-8:].lower()}"

    def run(*args):
        return subprocess.run([compose, "-p", project, *args], cwd=tmp_path, env=docker_env, capture_output=True,
                              text=True, timeout=300)
    try:
        up = run("up", "-d")
        assert up.returncode == 0, up.stderr
        db = json.loads(docker("inspect", f"{project}_db_1").stdout)[0]
        app = json.loads(docker("inspect", f"{project}_app_1").stdout)[0]
        assert db["State"]["Health"]["Status"] == "healthy"
        assert app["State"]["Running"]
        assert app["State"]["StartedAt"] > db["State"]["StartedAt"]
    finally:
        run("down", "-v")
