"""info, version, events, system df, serve, nano build, network ls/inspect."""

from __future__ import annotations

import json
import sys

from nanovisor.cli.containers import parse_filter_flags
from nanovisor.cli.main import engine_for
from nanovisor.cli.output import formatted, table
from nanovisor.units import human_size


def add_info(p):
    p.add_argument("-f", "--format")


def cmd_info(args) -> int:
    info = engine_for(args).info()
    if args.format:
        formatted(args.format, [info])
        return 0
    print("Server:")
    for label, key in (("Containers", "Containers"), (" Running", "ContainersRunning"),
                       (" Paused", "ContainersPaused"), (" Stopped", "ContainersStopped"), ("Images", "Images"),
                       ("Server Version", "ServerVersion"), ("Storage Driver", "Driver"),
                       ("Logging Driver", "LoggingDriver"), ("Cgroup Driver", "CgroupDriver"),
                       ("Cgroup Version", "CgroupVersion"), ("Default Runtime", "DefaultRuntime"),
                       ("Kernel Version", "KernelVersion"), ("Operating System", "OperatingSystem"),
                       ("Architecture", "Architecture"), ("CPUs", "NCPU"), ("Total Memory", "MemTotal"),
                       ("Docker Root Dir", "DockerRootDir")):
        value = info.get(key)
        if key == "MemTotal":
            value = f"{value / 2**30:.2f}GiB"
        print(f" {label}: {value}")
    runtimes = info.get("Runtimes") or {}
    print(f" Runtimes: {' '.join(sorted(runtimes))}")
    for name in sorted(runtimes):  # each runtime's own status: isolation, the VM's accelerator, ...
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in (runtimes[name].get("status") or {}).items()))
    for w in info.get("Warnings") or []:
        print(w, file=sys.stderr)
    return 0


def add_version(p):
    p.add_argument("-f", "--format")


def cmd_version(args) -> int:
    from nanovisor.engine.system import version

    v = version()
    if args.format:
        formatted(args.format, [{"Client": {"Version": v["Version"]}, "Server": v}])
        return 0
    print(f"nanovisor version {v['Version']} (API {v['ApiVersion']}, min {v['MinAPIVersion']})")
    return 0


def add_events(p):
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")


def cmd_events(args) -> int:
    from nanovisor.engine.timefmt import parse_time_filter, rfc3339_ns

    engine = engine_for(args)
    since = parse_time_filter(args.since) if args.since else None
    until = parse_time_filter(args.until) if args.until else None
    for msg in engine.events(since, until, parse_filter_flags(args.filter)):
        if args.format:
            formatted(args.format, [msg])
        else:
            attrs = ", ".join(f"{k}={v}" for k, v in sorted(msg["Actor"]["Attributes"].items()))
            print(f"{rfc3339_ns(msg['timeNano'])[:-1]}+00:00 {msg['Type']} {msg['Action']} {msg['Actor']['ID']}"
                  f" ({attrs})", flush=True)
    return 0


def add_df(p):
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--format")


def cmd_df(args) -> int:
    d = engine_for(args).system_df()
    images_size = d["LayersSize"]
    cont_size = sum(c.get("SizeRw", 0) for c in d["Containers"])
    vol_size = sum(v["UsageData"]["Size"] for v in d["Volumes"])
    active_images = len({c["ImageID"] for c in d["Containers"]})
    rows = [["Images", str(len(d["Images"])), str(active_images), human_size(images_size), "0B"],
            ["Containers", str(len(d["Containers"])), str(sum(1 for c in d["Containers"] if c["State"] == "running")),
             human_size(cont_size), "0B"],
            ["Local Volumes", str(len(d["Volumes"])),
             str(sum(1 for v in d["Volumes"] if v["UsageData"]["RefCount"])), human_size(vol_size), "0B"],
            ["Build Cache", "0", "0", "0B", "0B"]]
    if args.format:
        formatted(args.format, [dict(zip(["Type", "TotalCount", "Active", "Size", "Reclaimable"], r)) for r in rows])
        return 0
    table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows)
    return 0


def _go_bool(v: str) -> bool:
    """Go's strconv.ParseBool, as dockerd's --tls=false reads it."""
    low = v.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise ValueError(v)


def add_serve(p):
    p.add_argument("-H", "--host", action="append", default=[])
    p.add_argument("--insecure-registry", action="append", default=[])
    # dockerd's TLS flags, names and defaults (see api/tls.py); help texts in helptext.py
    p.add_argument("--tls", nargs="?", const=True, default=None, type=_go_bool)
    p.add_argument("--tlsverify", nargs="?", const=True, default=None, type=_go_bool)
    p.add_argument("--tlscacert")
    p.add_argument("--tlscert")
    p.add_argument("--tlskey")
    p.add_argument("--insecure-tcp", action="store_true")
    p.add_argument("--api-workers", type=int, default=None)
    p.add_argument("--log-driver", default="json-file")
    p.add_argument("--log-opt", action="append", default=[])


def cmd_serve(args) -> int:
    from nanovisor.api.server import parse_host, serve
    from nanovisor.api.tls import TLSOptions, check_plain_tcp, server_context
    from nanovisor.engine import Engine
    from nanovisor.logconfig import configure
    from nanovisor.paths import DEFAULT_SOCKET

    configure(debug=args.debug, daemon=True)
    hosts = args.host or [f"unix://{DEFAULT_SOCKET}"]
    opts = TLSOptions(args.tls, args.tlsverify, args.tlscacert, args.tlscert, args.tlskey,
                      args.insecure_tcp).resolved()
    check_plain_tcp([a for k, a in (parse_host(h, opts.enabled) for h in hosts) if k == "tcp"], opts)
    tls = server_context(opts) if opts.enabled else None
    log_opts = dict(o.split("=", 1) if "=" in o else (o, "") for o in args.log_opt)
    engine = Engine(args.root, persistent=True, insecure_registries=args.insecure_registry,
                    log_config={"Type": args.log_driver, "Config": log_opts})
    engine.recover()
    serve(engine, hosts, tls, args.api_workers)
    return 0


def add_nano_build(p):
    p.add_argument("-t", "--tag")
    p.add_argument("what", nargs="?", choices=["busybox"], help="the legacy busybox base image")
    p.add_argument("--package", action="append", default=[], help="Debian package (repeatable)")
    p.add_argument("--keep", action="append", default=[], help="path pattern kept despite the default drops")
    p.add_argument("--drop", action="append", default=[], help="path pattern dropped too")
    p.add_argument("--shell", action="store_true", help="add busybox as /bin/sh and applets")
    p.add_argument("--cache", help="directory of .debs to build from (default /var/cache/nanovisor/debs)")


def cmd_nano_build(args) -> int:
    from nanovisor.errors import InvalidParameter

    engine = engine_for(args)
    if args.what == "busybox":
        from nanovisor.nano.busybox import build

        image = build(engine.images, ref=args.tag or "nano/busybox:latest")
        print(image.id)
        return 0
    if not args.package:
        raise InvalidParameter("nano build: give --package PKG (repeatable) or `busybox`")
    from pathlib import Path

    from nanovisor.nano.build import BuildOptions
    from nanovisor.nano.build import build as nano_build
    from nanovisor.nano.debcache import DEFAULT_CACHE

    opts = BuildOptions(packages=args.package, tag=args.tag, keep=args.keep, drop=args.drop, shell=args.shell,
                        cache=Path(args.cache) if args.cache else DEFAULT_CACHE)
    result = nano_build(engine.images, opts)
    print(f"{len(result.packages)} packages, {human_size(result.size)} kept, {human_size(result.dropped)} "
          f"dropped", file=sys.stderr)
    print(result.image.id)
    return 0


def add_nano_fetch(p):
    p.add_argument("--package", action="append", default=[], required=True,
                   help="Debian package to download with its dependencies (repeatable)")
    p.add_argument("--cache", help="directory of .debs (default /var/cache/nanovisor/debs)")


def cmd_nano_fetch(args) -> int:
    """Fills the package cache (needs apt's network sources); builds then work offline."""
    from pathlib import Path

    from nanovisor.nano.debcache import DEFAULT_CACHE
    from nanovisor.nano.resolve import fetch

    debs = fetch(args.package, Path(args.cache) if args.cache else DEFAULT_CACHE)
    print(f"{len(debs)} packages in the cache")
    return 0


def add_nano_slim(p):
    p.add_argument("image")
    p.add_argument("-t", "--tag", required=True)
    p.add_argument("--probe", action="append", default=[], help="command run in the container (shell words)")
    p.add_argument("--http-probe", action="append", default=[], type=int, metavar="PORT",
                   help="GET / on this container port must answer")
    p.add_argument("--keep", action="append", default=[], help="path kept even if never opened")
    p.add_argument("--wait", type=float, default=2.0, help="seconds the command runs before the probes")
    p.add_argument("--report", help="write the JSON report here too")


def cmd_nano_slim(args) -> int:
    from nanovisor.nano.slim import SlimOptions, slim

    report = slim(engine_for(args), SlimOptions(image=args.image, tag=args.tag, probes=args.probe,
                                                http_probes=args.http_probe, keep=args.keep, wait=args.wait))
    text = json.dumps(report, indent=2)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text + "\n")
    kept, removed, size = report["kept"], report["removed"], report["size"]
    print(f"kept {kept['files']} files, {human_size(kept['bytes'])}; removed {removed['files']} files, "
          f"{human_size(removed['bytes'])}; image {human_size(size['original'])} -> {human_size(size['slim'])}",
          file=sys.stderr)
    print(report["image"])
    return 0


_ = json
