"""Container verbs other than run/create/attach/exec."""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import time

from nanovisor.cli.main import engine_for
from nanovisor.cli.output import dump_json, for_each, formatted, table
from nanovisor.errors import InvalidParameter, NanovisorError, NotFound


def _each(args, func) -> int:
    return for_each(args.containers, func)


def add_start(p):
    p.add_argument("-a", "--attach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("containers", nargs="+")


def cmd_start(args) -> int:
    engine = engine_for(args)
    if args.attach:
        from nanovisor.cli.terminal import pump, raw_terminal

        c = engine.get(args.containers[0])
        session = engine.container_attach(c.id, stdin=args.interactive)
        engine.container_start(c.id)
        with raw_terminal(bool(c.config.get("Tty")) and args.interactive):
            pump(session, args.interactive)
        return int(engine.container_wait(c.id)["StatusCode"])

    def start(ref):
        try:
            engine.container_start(ref)
        except NanovisorError as e:
            if e.status != 304:
                raise
    return _each(args, start)


def add_stop(p):
    p.add_argument("-t", "--time", "--timeout", type=int, dest="timeout")
    p.add_argument("-s", "--signal")
    p.add_argument("containers", nargs="+")


def cmd_stop(args) -> int:
    engine = engine_for(args)

    def stop(ref):
        try:
            engine.container_stop(ref, args.timeout, args.signal)
        except NanovisorError as e:
            if e.status != 304:
                raise
    return _each(args, stop)


add_restart = add_stop


def cmd_restart(args) -> int:
    engine = engine_for(args)
    return _each(args, lambda ref: engine.container_restart(ref, args.timeout, args.signal))


def add_kill(p):
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+")


def cmd_kill(args) -> int:
    engine = engine_for(args)
    return _each(args, lambda ref: engine.container_kill(ref, args.signal))


def add_rm(p):
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true")
    p.add_argument("containers", nargs="+")


def cmd_rm(args) -> int:
    engine = engine_for(args)
    return _each(args, lambda ref: engine.container_remove(ref, args.force, args.volumes))


add_pause = add_unpause = lambda p: p.add_argument("containers", nargs="+")


def cmd_pause(args) -> int:
    engine = engine_for(args)
    return _each(args, engine.container_pause)


def cmd_unpause(args) -> int:
    engine = engine_for(args)
    return _each(args, engine.container_unpause)


def add_rename(p):
    p.add_argument("container")
    p.add_argument("new_name")


def cmd_rename(args) -> int:
    engine_for(args).container_rename(args.container, args.new_name)
    return 0


def add_wait(p):
    p.add_argument("containers", nargs="+")


def cmd_wait(args) -> int:
    engine = engine_for(args)
    return for_each(args.containers, lambda ref: print(engine.container_wait(ref)["StatusCode"]), echo=False)


# ps ----------------------------------------------------------------------------------------------
def add_ps(p):
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    p.add_argument("-n", "--last", type=int, default=-1)
    p.add_argument("-l", "--latest", action="store_true")
    p.add_argument("-s", "--size", action="store_true")
    p.add_argument("--no-trunc", action="store_true")


def parse_filter_flags(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidParameter("bad format of filter (expected name=value)")
        out.setdefault(key, []).append(value)
    return out


def _ago(ts: float) -> str:
    from nanovisor.engine.views import _ago as ago

    return ago(time.time() - ts) + " ago"


def _ports(ports: list[dict]) -> str:
    parts = []
    for p in ports:
        if p.get("PublicPort"):
            ip = p.get("IP", "0.0.0.0")
            parts.append(f"{f'[{ip}]' if ':' in ip else ip}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}")
        else:
            parts.append(f"{p['PrivatePort']}/{p['Type']}")
    return ", ".join(parts)


def ps_row(s: dict, no_trunc: bool = False) -> dict:
    command = s["Command"]
    if not no_trunc and len(command) > 20:
        command = command[:19] + "…"
    created = time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(s["Created"]))
    labels = s.get("Labels") or {}
    return {"Command": f'"{command}"', "CreatedAt": created, "ID": s["Id"] if no_trunc else s["Id"][:12],
            "Image": s["Image"], "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "LocalVolumes": str(sum(1 for m in s.get("Mounts") or [] if m.get("Type") == "volume")),
            "Mounts": ",".join(m.get("Name") or m.get("Source", "") for m in s.get("Mounts") or []),
            "Names": s["Names"][0].lstrip("/"), "Networks": ",".join(s["NetworkSettings"]["Networks"]),
            "Ports": _ports(s.get("Ports") or []), "RunningFor": _ago(s["Created"]),
            "Size": f"{s.get('SizeRw', 0)}B" if "SizeRw" in s else "0B", "State": s["State"],
            "Status": s["Status"]}


def cmd_ps(args) -> int:
    engine = engine_for(args)
    limit = 1 if args.latest else args.last
    items = engine.container_list(all=args.all or limit > 0, limit=limit, size=args.size,
                                  filters=parse_filter_flags(args.filter))
    if args.quiet:
        for s in items:
            print(s["Id"] if args.no_trunc else s["Id"][:12])
        return 0
    rows = [ps_row(s, args.no_trunc) for s in items]
    if args.format:
        formatted(args.format, rows, {"ID": "CONTAINER ID", "RunningFor": "CREATED", "CreatedAt": "CREATED AT"})
        return 0
    table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
          [[r["ID"], r["Image"], r["Command"], r["RunningFor"], r["Status"], r["Ports"], r["Names"]]
           for r in rows])
    return 0


# logs --------------------------------------------------------------------------------------------
def add_logs(p):
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("--since", default="")
    p.add_argument("--until", default="")
    p.add_argument("--details", action="store_true")
    p.add_argument("container")


def cmd_logs(args) -> int:
    from nanovisor.engine.timefmt import parse_time_filter

    engine = engine_for(args)
    out = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    for stream, line in engine.container_logs(args.container, follow=args.follow,
                                              since=parse_time_filter(args.since),
                                              until=parse_time_filter(args.until),
                                              timestamps=args.timestamps, tail=args.tail):
        out[stream].write(line)
        out[stream].flush()
    return 0


# inspect / top / stats ---------------------------------------------------------------------------
def add_inspect(p):
    p.add_argument("-f", "--format")
    p.add_argument("-s", "--size", action="store_true")
    p.add_argument("--type")
    p.add_argument("names", nargs="+")


def cmd_inspect(args) -> int:
    engine = engine_for(args)
    found, code = [], 0
    for ref in args.names:
        try:
            if args.type in (None, "container"):
                try:
                    found.append(engine.container_inspect(ref, args.size))
                    continue
                except NotFound:
                    if args.type == "container":
                        raise
            if args.type in (None, "image"):
                try:
                    found.append(engine.image_inspect(ref))
                    continue
                except NotFound:
                    if args.type == "image":
                        raise
            if args.type in (None, "volume"):
                try:
                    found.append(engine.volume_inspect(ref))
                    continue
                except NotFound:
                    pass
            raise NotFound(f"No such object: {ref}")
        except NanovisorError as e:
            print(f"Error: {e}", file=sys.stderr)
            code = 1
    if args.format:
        formatted(args.format, found)
    else:
        dump_json(found)
    return code


def add_top(p):
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)


def cmd_top(args) -> int:
    result = engine_for(args).container_top(args.container, " ".join(args.ps_args) or "-ef")
    table(result["Titles"], result["Processes"])
    return 0


def add_stats(p):
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("--format")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("containers", nargs="*")


def _stats_row(prev: dict, cur: dict) -> dict:
    from nanovisor.units import human_size

    cpu_delta = cur["cpu_stats"]["cpu_usage"]["total_usage"] - prev["cpu_stats"]["cpu_usage"]["total_usage"]
    sys_delta = cur["cpu_stats"]["system_cpu_usage"] - prev["cpu_stats"]["system_cpu_usage"]
    cpus = cur["cpu_stats"].get("online_cpus") or 1
    cpu = (cpu_delta / sys_delta) * cpus * 100 if sys_delta > 0 and cpu_delta > 0 else 0.0
    mem = cur["memory_stats"]
    usage = mem.get("usage", 0) - (mem.get("stats") or {}).get("total_inactive_file", 0)
    limit = mem.get("limit", 0) or 1
    rx = sum(n["rx_bytes"] for n in (cur.get("networks") or {}).values())
    tx = sum(n["tx_bytes"] for n in (cur.get("networks") or {}).values())
    blk = cur["blkio_stats"].get("io_service_bytes_recursive") or []
    rd = sum(e["value"] for e in blk if e["op"].lower() == "read")
    wr = sum(e["value"] for e in blk if e["op"].lower() == "write")

    def binary(n: float) -> str:
        for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
            if n < 1024 or unit == "TiB":
                return f"{n:.4g}{unit}"
            n /= 1024
        return ""

    return {"Container": cur["id"][:12], "ID": cur["id"][:12], "Name": cur["name"].lstrip("/"),
            "CPUPerc": f"{cpu:.2f}%", "MemUsage": f"{binary(usage)} / {binary(limit)}",
            "MemPerc": f"{usage / limit * 100:.2f}%", "NetIO": f"{human_size(rx)} / {human_size(tx)}",
            "BlockIO": f"{human_size(rd)} / {human_size(wr)}", "PIDs": str(cur["pids_stats"].get("current", 0))}


def cmd_stats(args) -> int:
    engine = engine_for(args)
    refs = args.containers or [s["Id"] for s in engine.container_list(all=args.all)]

    def sample_all() -> list[dict]:
        rows = []
        firsts = {ref: engine.container_stats(ref) for ref in refs}
        time.sleep(0.5)
        for ref in refs:
            rows.append(_stats_row(firsts[ref], engine.container_stats(ref)))
        return rows

    while True:
        rows = sample_all()
        if not args.no_stream:
            sys.stdout.write("\033[2J\033[H")
        if args.format:
            formatted(args.format, rows, {"CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                                          "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "Container": "CONTAINER",
                                          "ID": "CONTAINER ID"})
        else:
            table(["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"],
                  [[r["ID"], r["Name"], r["CPUPerc"], r["MemUsage"], r["MemPerc"], r["NetIO"], r["BlockIO"],
                    r["PIDs"]] for r in rows])
        if args.no_stream:
            return 0
        sys.stdout.flush()


# cp / export -------------------------------------------------------------------------------------
def add_cp(p):
    p.add_argument("-a", "--archive", action="store_true")
    p.add_argument("-L", "--follow-link", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("src")
    p.add_argument("dest")


def _split(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith("/") and not arg.startswith("."):
        ref, path = arg.split(":", 1)
        return ref, path
    return None, arg


def cmd_cp(args) -> int:
    engine = engine_for(args)
    src_ref, src = _split(args.src)
    dst_ref, dst = _split(args.dest)
    if bool(src_ref) == bool(dst_ref):
        raise InvalidParameter("copying between containers is not supported" if src_ref
                               else "must specify at least one container source")
    if src_ref:
        stat, stream = engine.container_archive_get(src_ref, src)
        data = b"".join(stream)
        if dst == "-":
            sys.stdout.buffer.write(data)
            return 0
        _extract_local(data, dst, stat["name"], src.endswith("/."))
        return 0
    # host → container
    if not os.path.lexists(src):
        raise InvalidParameter(f"could not find the file {src} in the host")
    try:
        target = engine.container_archive_stat(dst_ref, dst)
        target_is_dir = bool(target["mode"] & (1 << 31))
    except NotFound:
        target_is_dir = False
    base = os.path.basename(src.rstrip("/")) if not src.endswith("/.") else "."
    if target_is_dir:
        dest_dir, arcname = dst, base
    else:
        dest_dir, arcname = os.path.dirname(dst.rstrip("/")) or "/", os.path.basename(dst.rstrip("/"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if src.endswith("/."):
            for name in sorted(os.listdir(src[:-2] or ".")):
                tar.add(os.path.join(src[:-2], name), arcname=os.path.join(arcname if not target_is_dir
                                                                               else "", name) or name)
        else:
            tar.add(src, arcname=arcname)
    buf.seek(0)
    engine.container_archive_put(dst_ref, dest_dir, buf)
    return 0


def _extract_local(data: bytes, dst: str, src_name: str, content_only: bool) -> None:
    """docker cp semantics on the host: into an existing dir, or renamed to dst."""
    import shutil
    import tempfile

    dst = os.path.abspath(dst)
    into_dir = os.path.isdir(dst)
    parent = dst if into_dir else os.path.dirname(dst)
    if not os.path.isdir(parent):
        raise InvalidParameter(f"no such directory: {parent}")
    tmp = tempfile.mkdtemp(dir=parent, prefix=".nv-cp-")
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(tmp, filter="tar")
        entries = os.listdir(tmp)
        if content_only or src_name == ".":
            target = dst
            os.makedirs(target, exist_ok=True)
            for e in entries:
                _move(os.path.join(tmp, e), os.path.join(target, e))
        else:
            produced = os.path.join(tmp, src_name)
            target = os.path.join(dst, src_name) if into_dir else dst
            _move(produced, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move(src: str, dst: str) -> None:
    import shutil

    if os.path.isdir(dst) and os.path.isdir(src) and not os.path.islink(src):
        for e in os.listdir(src):
            _move(os.path.join(src, e), os.path.join(dst, e))
        return
    if os.path.lexists(dst) and not os.path.isdir(dst):
        os.unlink(dst)
    shutil.move(src, dst)


def add_export(p):
    p.add_argument("-o", "--output")
    p.add_argument("container")


def cmd_export(args) -> int:
    engine = engine_for(args)
    stream = engine.container_export(args.container)
    if args.output:
        with open(args.output, "wb") as f:
            for chunk in stream:
                f.write(chunk)
    else:
        if sys.stdout.isatty():
            raise InvalidParameter("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        for chunk in stream:
            sys.stdout.buffer.write(chunk)
    return 0


# prune / cleanup ---------------------------------------------------------------------------------
def add_prune(p):
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])


def cmd_prune(args) -> int:
    from nanovisor.units import human_size

    result = engine_for(args).container_prune(parse_filter_flags(args.filter))
    if result["ContainersDeleted"]:
        print("Deleted Containers:")
        for cid in result["ContainersDeleted"]:
            print(cid)
        print()
    print(f"Total reclaimed space: {human_size(result['SpaceReclaimed'])}")
    return 0


def add_cleanup(p):
    p.add_argument("container")


def cmd_cleanup(args) -> int:
    """conmon's exit command: record the exit, then restart or auto-remove as the policy says."""
    from nanovisor.engine import Engine

    engine = Engine(args.root, persistent=True)
    c = engine.containers.find(args.container)
    if c is None:
        return 0
    engine.lifecycle.reap(c)  # conmon (our parent) wrote the exit file before running us
    return 0



def add_healthcheck(p):
    p.add_argument("container")


def cmd_healthcheck(args) -> int:
    """Runs the container's healthcheck once and records it (what serve does on every interval); exit 0 when
    healthy, 1 otherwise, as `podman healthcheck run`."""
    health = engine_for(args).container_healthcheck(args.container)
    print(health["Status"])
    return 0 if health["Status"] == "healthy" else 1


def add_update(p):
    for flag in ("--memory", "-m"), ("--memory-swap",), ("--memory-reservation",), ("--cpus",), \
            ("--cpuset-cpus",), ("--cpuset-mems",), ("--restart",):
        p.add_argument(*flag)
    for flag in ("--cpu-shares", "-c"), ("--cpu-period",), ("--cpu-quota",), ("--pids-limit",), ("--blkio-weight",):
        p.add_argument(*flag, type=int)
    p.add_argument("containers", nargs="+")


def cmd_update(args) -> int:
    from nanovisor.cli.runopts import _restart, _size

    body = {"Memory": _size(args.memory), "MemoryReservation": _size(args.memory_reservation),
            "NanoCpus": int(float(args.cpus) * 1e9) if args.cpus else 0, "CpusetCpus": args.cpuset_cpus or "",
            "CpusetMems": args.cpuset_mems or "", "CpuShares": args.cpu_shares or 0,
            "CpuPeriod": args.cpu_period or 0, "CpuQuota": args.cpu_quota or 0,
            "PidsLimit": args.pids_limit, "BlkioWeight": args.blkio_weight or 0}
    if args.memory_swap:
        body["MemorySwap"] = -1 if args.memory_swap == "-1" else _size(args.memory_swap)
    if args.restart:
        body["RestartPolicy"] = _restart(args.restart)
    engine = engine_for(args)

    def one(ref: str) -> None:
        engine.container_update(ref, body)
        print(ref)
    return for_each(args.containers, one)


def add_diff(p):
    p.add_argument("container")


def cmd_diff(args) -> int:
    for change in engine_for(args).container_changes(args.container):
        print("CAD"[change["Kind"]], change["Path"])
    return 0
