"""nftables ruleset of one engine root, rendered whole from the database and applied atomically.

One table (`inet nanovisor-<roothash>`) holds everything; each change replaces the table in a single nft
transaction (add; delete; add + contents), so re-applying is idempotent, a crash never leaves half a
ruleset, and two engine roots never touch each other's rules. JSON goes through `nft -j -f -`.

Per bridge: published ports are DNATed in prerouting and output (fib daddr type local, like Docker's
ADDRTYPE match), hairpin and host-loopback connections are masqueraded so replies come back through the
host, 127.0.0.0/8 arriving from a bridge is dropped (route_localnet is on), and forwarding into a bridge
is allowed only for replies, DNATed connections and same-bridge traffic; bridges never reach each other,
in either direction (see _forward).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass

from nanovisor.errors import SystemError_


@dataclass(frozen=True)
class BridgeRules:
    name: str          # device
    subnet: str        # "10.1.0.0/24"
    outbound: bool     # forward to other interfaces (+ masquerade when masquerade)
    masquerade: bool
    icc: bool = True   # containers on this bridge may talk to each other (enable_icc)


@dataclass(frozen=True)
class PortRule:
    proto: str         # tcp | udp | sctp
    host_ip: str       # "" / "0.0.0.0" for any local address
    host_port: int
    addr: str          # container address
    port: int


def table_name(root: str) -> str:
    return "nanovisor-" + hashlib.sha256(root.encode()).hexdigest()[:8]


def _m(left: dict, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict:
    return {"meta": {"key": key}}


def _prefix(cidr: str) -> dict:
    addr, length = cidr.split("/")
    return {"prefix": {"addr": addr, "len": int(length)}}


IP_SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
IP_DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
LOCAL_DST = _m({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
ACCEPT, DROP, MASQ = {"accept": None}, {"drop": None}, {"masquerade": None}


def render(table: str, bridges: list[BridgeRules], ports: list[PortRule]) -> list[dict]:
    """The nft JSON command list that makes the table exactly match the given state."""
    t = {"family": "inet", "table": table}
    cmds: list[dict] = [{"add": {"table": {"family": "inet", "name": table}}},
                        {"delete": {"table": {"family": "inet", "name": table}}},
                        {"add": {"table": {"family": "inet", "name": table}}}]

    def chain(name: str, **base) -> None:
        cmds.append({"add": {"chain": dict(t, name=name, **base)}})

    def rule(chain_name: str, *expr: dict) -> None:
        cmds.append({"add": {"rule": dict(t, chain=chain_name, expr=list(expr))}})

    chain("guard", type="filter", hook="prerouting", prio=-300, policy="accept")
    chain("prerouting", type="nat", hook="prerouting", prio=-100, policy="accept")
    chain("output", type="nat", hook="output", prio=-100, policy="accept")
    chain("postrouting", type="nat", hook="postrouting", prio=100, policy="accept")
    chain("forward", type="filter", hook="forward", prio=0, policy="accept")
    chain("publish")
    rule("prerouting", LOCAL_DST, {"jump": {"target": "publish"}})
    rule("output", LOCAL_DST, {"jump": {"target": "publish"}})

    for p in ports:
        if ":" in p.host_ip:
            continue  # an IPv6 host address: netd's proxy serves it (ports.is_proxied), no DNAT
        expr = [_m(_meta("nfproto"), "ipv4")]
        if p.host_ip not in ("", "0.0.0.0"):
            expr.append(_m(IP_DADDR, p.host_ip))
        expr += [_m(_meta("l4proto"), p.proto), _m({"payload": {"protocol": "th", "field": "dport"}}, p.host_port),
                 {"dnat": {"family": "ip", "addr": p.addr, "port": p.port}}]
        rule("publish", *expr)

    iif, oif = _meta("iifname"), _meta("oifname")
    _forward(cmds, t, bridges)
    for b in bridges:
        rule("guard", _m(iif, b.name), _m(IP_DADDR, _prefix("127.0.0.0/8")), DROP)
        rule("postrouting", _m(oif, b.name), _m(IP_SADDR, _prefix("127.0.0.0/8")), MASQ)
        # hairpin: no iifname match, br_netfilter passes bridged packets here without an input device
        rule("postrouting", _m(oif, b.name), _m(IP_SADDR, _prefix(b.subnet)),
             _m({"ct": {"key": "status"}}, "dnat", op="in"), MASQ)
        if b.outbound and b.masquerade:
            rule("postrouting", _m(IP_SADDR, _prefix(b.subnet)), _m(oif, b.name, op="!="), MASQ)
    return cmds


def _forward(cmds: list[dict], t: dict, bridges: list[BridgeRules]) -> None:
    """The forward chain, in stages whose order is fixed whatever order the networks were created in:
    1. replies, DNATed (published-port) connections and same-bridge traffic are accepted (the latter
       dropped for a network with enable_icc=false);
    2. any bridge to any other bridge of this root is dropped (isolation, both ways, default bridge
       included) — before any bridge's outbound accept can see the packet;
    3. nothing else enters a bridge;
    4. leaving a bridge for the outside: accepted, or dropped for internal / no-outbound networks.
    Bridges of another engine root are isolated by that root's own table (stage 3 there)."""
    iif, oif = _meta("iifname"), _meta("oifname")
    names = [b.name for b in bridges]
    cmds.append({"add": {"set": dict(t, name="bridges", type="ifname", elem=names)}})

    def rule(*expr: dict) -> None:
        cmds.append({"add": {"rule": dict(t, chain="forward", expr=list(expr))}})

    rule(_m(oif, "@bridges"), _m({"ct": {"key": "state"}}, ["established", "related"], op="in"), ACCEPT)
    rule(_m(oif, "@bridges"), _m({"ct": {"key": "status"}}, "dnat", op="in"), ACCEPT)
    for b in bridges:
        rule(_m(iif, b.name), _m(oif, b.name), ACCEPT if b.icc else DROP)  # enable_icc=false: dropped
    rule(_m(iif, "@bridges"), _m(oif, "@bridges"), DROP)
    rule(_m(oif, "@bridges"), DROP)
    for b in bridges:
        rule(_m(iif, b.name), ACCEPT if b.outbound else DROP)


def run(cmds: list[dict]) -> None:
    doc = json.dumps({"nftables": [{"metainfo": {"json_schema_version": 1}}] + cmds})
    proc = subprocess.run(["nft", "-j", "-f", "-"], input=doc, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemError_(f"nft failed: {proc.stderr.strip()}")


def apply(table: str, bridges: list[BridgeRules], ports: list[PortRule]) -> None:
    """Replace the table with the given state; with no bridge at all the table is removed."""
    if not bridges:
        delete(table)
    else:
        run(render(table, bridges, ports))


def delete(table: str) -> None:
    run([{"add": {"table": {"family": "inet", "name": table}}},
         {"delete": {"table": {"family": "inet", "name": table}}}])


def list_table(table: str) -> list[dict]:
    """The table's objects as nft JSON (for tests and debugging); [] when it does not exist."""
    proc = subprocess.run(["nft", "-j", "list", "table", "inet", table], capture_output=True, text=True)
    if proc.returncode != 0:
        return []
    return [o for o in json.loads(proc.stdout)["nftables"] if "metainfo" not in o]
