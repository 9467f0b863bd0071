"""Container streams and file transfer: attach (hijacked), logs, stats, archive (docker cp), export."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

from nanovisor import errors
from nanovisor.api import stdcopy
from nanovisor.api.request import Request
from nanovisor.api.responses import (
    JSON,
    MUX_STREAM,
    RAW_STREAM,
    TAR_TYPE,
    Empty,
    Hijack,
    Response,
    Stream,
    WebSocket,
    dumps,
)
from nanovisor.api.router import version_at_least
from nanovisor.engine.detachkeys import parse_detach_keys

STATS_INTERVAL = 1.0  # seconds between samples, as dockerd's collector
_ZERO_TIME = "0001-01-01T00:00:00Z"
_EMPTY_CPU = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
              "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def attach(req: Request) -> Hijack:
    keys = parse_detach_keys(req.q("detachKeys"))
    stdin = req.qbool("stdin")
    config = req.engine.container_inspect(req.params["name"]).get("Config") or {}
    session = req.engine.container_attach(
        req.params["name"], stdin=stdin, stdout=req.qbool("stdout"), stderr=req.qbool("stderr"),
        logs=req.qbool("logs"), stream=req.qbool("stream"))
    once = bool(config.get("StdinOnce")) and not config.get("Tty")
    return Hijack(session, stdin=stdin, close_stdin_on_eof=once, detach_keys=keys)


def attach_ws(req: Request) -> WebSocket:
    from nanovisor.api.websocket import check_handshake

    key = check_handshake(req.headers)
    stdin = req.qbool("stdin")
    session = req.engine.container_attach(
        req.params["name"], stdin=stdin, stdout=req.qbool("stdout"), stderr=req.qbool("stderr"),
        logs=req.qbool("logs"), stream=req.qbool("stream"))
    return WebSocket(session, stdin, key)


def logs(req: Request) -> Stream:
    ref = req.params["name"]
    stdout, stderr = req.qbool("stdout"), req.qbool("stderr")
    if not (stdout or stderr):
        raise errors.InvalidParameter("Bad parameters: you must choose at least one stream")
    tty = bool(req.engine.container_inspect(ref).get("Config", {}).get("Tty"))
    lines = req.engine.container_logs(
        ref, stdout=stdout, stderr=stderr, follow=req.qbool("follow"), since=req.qtime("since"),
        until=req.qtime("until"), timestamps=req.qbool("timestamps"), tail=req.q("tail") or "all")
    ctype = MUX_STREAM if not tty and version_at_least(req.version, "1.42") else RAW_STREAM
    return Stream(_frames(lines, tty), ctype)


def _frames(lines: Iterator[tuple[int, bytes]], tty: bool) -> Iterator[bytes]:
    for stream, data in lines:
        yield data if tty else stdcopy.frame(stream, data)


def with_precpu(sample: dict, prev: dict | None) -> dict:
    """Docker clients compute CPU % from cpu_stats - precpu_stats: the previous sample's cpu_stats."""
    out = dict(sample)
    out["precpu_stats"] = prev["cpu_stats"] if prev else _EMPTY_CPU
    out["preread"] = prev["read"] if prev else _ZERO_TIME
    return out


def stats(req: Request) -> Response | Stream:
    ref = req.params["name"]
    stream, one_shot = req.qbool("stream", True), req.qbool("one-shot")
    if stream and one_shot:
        raise errors.InvalidParameter("cannot have stream=true and one-shot=true")
    first = req.engine.container_stats(ref)
    if one_shot:
        return JSON(with_precpu(first, None))
    if not stream:
        time.sleep(STATS_INTERVAL)  # like dockerd: wait for a second sample so precpu is real
        return JSON(with_precpu(req.engine.container_stats(ref), first))
    return Stream(_stats_stream(req.engine, ref, first))


def _stats_stream(engine, ref: str, first: dict) -> Iterator[bytes]:
    prev = None
    sample = first
    while True:
        yield dumps(with_precpu(sample, prev))
        time.sleep(STATS_INTERVAL)
        prev = sample
        try:
            sample = engine.container_stats(ref)
        except errors.NanovisorError:
            return  # container gone: end the stream cleanly


def _path(req: Request) -> str:
    path = req.q("path")
    if not path:
        raise errors.InvalidParameter("path cannot be empty")
    return path


def _stat_header(stat: dict) -> dict[str, str]:
    return {"X-Docker-Container-Path-Stat":
            base64.b64encode(json.dumps(stat, separators=(",", ":")).encode()).decode()}


def archive_head(req: Request) -> Response:
    stat = req.engine.container_archive_stat(req.params["name"], _path(req))
    return Response(200, b"", None, _stat_header(stat))


def archive_get(req: Request) -> Stream:
    stat, tar = req.engine.container_archive_get(req.params["name"], _path(req))
    return Stream(tar, TAR_TYPE, headers=_stat_header(stat))


def archive_put(req: Request) -> Response:
    req.engine.container_archive_put(
        req.params["name"], _path(req), req.body,
        no_overwrite_dir_non_dir=req.qbool("noOverwriteDirNonDir"), copy_uid_gid=req.qbool("copyUIDGID"))
    return Empty(200)


def export(req: Request) -> Stream:
    ref = req.params["name"]
    req.engine.container_inspect(ref)  # a missing container is a 404, not a cut stream
    return Stream(req.engine.container_export(ref), TAR_TYPE)
