"""network create/ls/inspect/rm/connect/disconnect/prune, and port."""

from __future__ import annotations

import sys

from nanovisor.cli.containers import parse_filter_flags
from nanovisor.cli.main import engine_for
from nanovisor.cli.output import dump_json, for_each, formatted, table


def add_create(p):
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("--subnet", action="append", default=[])
    p.add_argument("--gateway", action="append", default=[])
    p.add_argument("--ip-range", action="append", default=[])
    p.add_argument("--internal", action="store_true")
    p.add_argument("--attachable", action="store_true")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("name")


def cmd_create(args) -> int:
    config = []
    for i, subnet in enumerate(args.subnet):
        entry = {"Subnet": subnet}
        if i < len(args.gateway):
            entry["Gateway"] = args.gateway[i]
        if i < len(args.ip_range):
            entry["IPRange"] = args.ip_range[i]
        config.append(entry)
    body = {"Name": args.name, "Driver": args.driver, "Internal": args.internal, "Attachable": args.attachable,
            "IPAM": {"Driver": "default", "Config": config},
            "Labels": dict(x.partition("=")[::2] for x in args.label),
            "Options": dict(x.partition("=")[::2] for x in args.opt)}
    print(engine_for(args).network_create(body)["Id"])
    return 0


def add_ls(p):
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    p.add_argument("--no-trunc", action="store_true")


def cmd_ls(args) -> int:
    nets = engine_for(args).network_list(parse_filter_flags(args.filter))
    rows = [{"ID": n["Id"] if args.no_trunc else n["Id"][:12], "Name": n["Name"], "Driver": n["Driver"],
             "Scope": n["Scope"], "Internal": str(n.get("Internal", False)).lower()} for n in nets]
    if args.quiet:
        for r in rows:
            print(r["ID"])
        return 0
    if args.format:
        formatted(args.format, rows, {"ID": "NETWORK ID"})
        return 0
    table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], [[r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows])
    return 0


def add_inspect(p):
    p.add_argument("-f", "--format")
    p.add_argument("networks", nargs="+")


def cmd_inspect(args) -> int:
    engine = engine_for(args)
    found = [engine.network_inspect(n) for n in args.networks]
    formatted(args.format, found) if args.format else dump_json(found)
    return 0


def add_rm(p):
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("networks", nargs="+")


def cmd_rm(args) -> int:
    engine = engine_for(args)
    return for_each(args.networks, engine.network_remove)


def add_connect(p):
    p.add_argument("--alias", action="append", default=[])
    p.add_argument("--ip")
    p.add_argument("network")
    p.add_argument("container")


def cmd_connect(args) -> int:
    conf = {"Aliases": args.alias or None}
    if args.ip:
        conf["IPAMConfig"] = {"IPv4Address": args.ip}
    engine_for(args).network_connect(args.network, args.container, conf)
    return 0


def add_disconnect(p):
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("network")
    p.add_argument("container")


def cmd_disconnect(args) -> int:
    engine_for(args).network_disconnect(args.network, args.container, args.force)
    return 0


def add_prune(p):
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])


def cmd_prune(args) -> int:
    result = engine_for(args).network_prune(parse_filter_flags(args.filter))
    deleted = result.get("NetworksDeleted") or []
    if deleted:
        print("Deleted Networks:")
        for name in deleted:
            print(name)
    return 0


def add_port(p):
    p.add_argument("container")
    p.add_argument("port", nargs="?")


def cmd_port(args) -> int:
    ports = engine_for(args).container_port(args.container)
    if args.port:
        key = args.port if "/" in args.port else args.port + "/tcp"
        bindings = ports.get(key) or []
        if not bindings:
            print(f"Error: No public port '{key}' published for {args.container}", file=sys.stderr)
            return 1
        for b in bindings:
            print(f"{_host(b)}:{b['HostPort']}")
        return 0
    for key, bindings in sorted(ports.items()):
        for b in bindings or []:
            print(f"{key} -> {_host(b)}:{b['HostPort']}")
    return 0


def _host(binding: dict) -> str:
    """As the docker CLI prints it: an IPv6 address in brackets."""
    ip = binding.get("HostIp") or "0.0.0.0"
    return f"[{ip}]" if ":" in ip else ip
