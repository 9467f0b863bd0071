"""`docker stats` and docker-py stats: one-shot, two-sample and streamed, with precpu from the previous one."""

from __future__ import annotations


def test_docker_stats_no_stream(docker, running):
    r = docker("stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}}", running)
    assert r.returncode == 0, r.stderr
    name, cpu, *_ = r.stdout.split()
    assert name == running
    assert cpu.endswith("%")


def test_stats_samples_chain_precpu(client, running):
    api = client.api
    one = api.stats(running, stream=False, one_shot=True)
    assert one["id"].startswith(client.containers.get(running).id[:12])
    assert one["cpu_stats"]["cpu_usage"]["total_usage"] >= 0
    assert one["precpu_stats"]["cpu_usage"]["total_usage"] == 0

    two = api.stats(running, stream=False)
    assert two["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert two["preread"] != "0001-01-01T00:00:00Z"

    stream = api.stats(running, stream=True, decode=True)
    first, second = next(stream), next(stream)
    stream.close()
    assert second["precpu_stats"] == first["cpu_stats"]
    assert second["preread"] == first["read"]
