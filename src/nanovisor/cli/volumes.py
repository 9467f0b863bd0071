"""volume create/ls/rm/inspect/prune."""

from __future__ import annotations

from nanovisor.cli.containers import parse_filter_flags
from nanovisor.cli.main import engine_for
from nanovisor.cli.output import dump_json, for_each, formatted, table
from nanovisor.units import human_size


def add_create(p):
    p.add_argument("-d", "--driver", default="local")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("name", nargs="?")


def cmd_create(args) -> int:
    labels = dict(item.partition("=")[::2] for item in args.label)
    opts = dict(item.partition("=")[::2] for item in args.opt)
    info = engine_for(args).volume_create({"Name": args.name or "", "Driver": args.driver, "Labels": labels,
                                           "DriverOpts": opts})
    print(info["Name"])
    return 0


def add_ls(p):
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")


def cmd_ls(args) -> int:
    vols = engine_for(args).volume_list(parse_filter_flags(args.filter))["Volumes"]
    if args.quiet:
        for v in vols:
            print(v["Name"])
        return 0
    rows = [{"Driver": v["Driver"], "Name": v["Name"], "Mountpoint": v["Mountpoint"], "Scope": v["Scope"],
             "Labels": ",".join(f"{k}={x}" for k, x in v["Labels"].items())} for v in vols]
    if args.format:
        formatted(args.format, rows, {"Name": "VOLUME NAME"})
        return 0
    table(["DRIVER", "VOLUME NAME"], [[r["Driver"], r["Name"]] for r in rows])
    return 0


def add_rm(p):
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("volumes", nargs="+")


def cmd_rm(args) -> int:
    engine = engine_for(args)
    return for_each(args.volumes, lambda name: engine.volume_remove(name, args.force))


def add_inspect(p):
    p.add_argument("-f", "--format")
    p.add_argument("volumes", nargs="+")


def cmd_inspect(args) -> int:
    engine = engine_for(args)
    found = [engine.volume_inspect(v) for v in args.volumes]
    formatted(args.format, found) if args.format else dump_json(found)
    return 0


def add_prune(p):
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])


def cmd_prune(args) -> int:
    filters = parse_filter_flags(args.filter)
    if args.all:
        filters["all"] = ["true"]
    result = engine_for(args).volume_prune(filters)
    if result["VolumesDeleted"]:
        print("Deleted Volumes:")
        for name in result["VolumesDeleted"]:
            print(name)
        print()
    print(f"Total reclaimed space: {human_size(result['SpaceReclaimed'])}")
    return 0
