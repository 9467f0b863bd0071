"""Networks of one engine root: the Docker network API (create/list/inspect/remove/prune), the predefined
bridge/host/none networks, and keeping kernel objects (bridge devices, the nftables table) in line with
the database. Container hooks live in manager.py."""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path

from nanovisor.errors import Conflict, Forbidden, InvalidParameter, NotFound
from nanovisor.network import ipam, links, nft
from nanovisor.network.model import NetRec, NetStore
from nanovisor.paths import DEFAULT_ROOT, Paths
from nanovisor.store.db import Database

HOST_LOCK = Path("/run/nanovisor/net.lock")  # host-wide: subnet choice + bridge creation across roots
OPT_NAME = "com.docker.network.bridge.name"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_ICC = "com.docker.network.bridge.enable_icc"


def _env_flag(name: str, default: bool = True) -> bool:
    return os.environ.get(name, "1" if default else "0").lower() not in ("0", "false", "no", "off")


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


@contextmanager
def file_lock(path: Path):
    """An exclusive flock on path, across threads and processes (a new open file each time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def host_lock():
    return file_lock(HOST_LOCK)


class Networks:
    def __init__(self, paths: Paths, db: Database, *, outbound: bool | None = None) -> None:
        self.paths, self.db = paths, db
        self.store = NetStore(db)
        self.roothash = hashlib.sha256(str(paths.root).encode()).hexdigest()
        self.table = nft.table_name(str(paths.root))
        self.outbound = _env_flag("NANOVISOR_NET_OUTBOUND") if outbound is None else outbound
        self._ensure_predefined()

    # predefined --------------------------------------------------------------------------------------
    def _predef_id(self, name: str) -> str:
        return hashlib.sha256(f"{self.roothash}/{name}".encode()).hexdigest()

    def default_bridge_name(self) -> str:
        return "nv0" if self.paths.root == DEFAULT_ROOT else "nv" + self.roothash[:6]

    def _ensure_predefined(self) -> None:
        if self.store.network(self._predef_id("none")) is not None:
            return
        with self.db.transaction():
            for name, driver in (("host", "host"), ("none", "null")):
                if self.store.network(self._predef_id(name)) is None:
                    self.store.add_network(NetRec(self._predef_id(name), name, time.time(),
                                                  {"Driver": driver, "Predefined": True}))

    def default_bridge(self) -> NetRec:
        """The `bridge` network: recorded on first use with a subnet free on this host."""
        net = self.store.network(self._predef_id("bridge"))
        if net is not None:
            return net
        with host_lock(), self.db.transaction():
            net = self.store.network(self._predef_id("bridge"))
            if net is None:
                subnet = ipam.choose_subnet(self._engine_subnets(), ipam.host_routes())
                opts = {"com.docker.network.bridge.default_bridge": "true",
                        OPT_ICC: "true",
                        OPT_MASQ: "true" if self.outbound else "false",
                        "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                        OPT_NAME: self.default_bridge_name(), OPT_MTU: "1500"}
                net = NetRec(self._predef_id("bridge"), "bridge", time.time(), self._spec(
                    subnet, None, ipam.first_host(subnet), opts, {}, False, False, True, user_subnet=False))
                net.spec["Default"] = True
                net.spec["Predefined"] = True
                self.store.add_network(net)
        return net

    def _engine_subnets(self) -> list[ipam.Net]:
        return [ipaddress.IPv4Network(n.spec["Subnet"]) for n in self.store.networks() if n.spec.get("Subnet")]

    def _spec(self, subnet, ip_range, gateway, options, labels, internal, attachable, masq, user_subnet,
              bridge: str = "") -> dict:
        """options: only what the user gave (compose compares them to decide whether to reuse a network)."""
        return {"Driver": "bridge", "Subnet": str(subnet), "IPRange": str(ip_range) if ip_range else "",
                "Gateway": str(gateway), "Options": options, "Labels": labels, "Internal": internal,
                "Attachable": attachable, "Masquerade": masq, "UserSubnet": user_subnet,
                "Bridge": bridge or options.get(OPT_NAME, ""), "MTU": int(options.get(OPT_MTU, 1500) or 1500)}

    # lookup ------------------------------------------------------------------------------------------
    def get(self, ref: str) -> NetRec:
        if ref in ("bridge", "default"):
            return self.default_bridge()
        found = self.store.find_network(ref)
        if not found and self._predef_id("bridge").startswith(ref) and len(ref) >= 1:
            return self.default_bridge()
        if len(found) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        if not found:
            raise NotFound(f"network {ref} not found")
        return found[0]

    # API ---------------------------------------------------------------------------------------------
    def create(self, body: dict) -> dict:
        name = (body.get("Name") or "").strip()
        if not name:
            raise InvalidParameter("invalid name: name is empty")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            raise NotFound(f"plugin \"{driver}\" not found")
        if name in ("bridge", "host", "none", "default"):
            raise Forbidden(f"operation is not permitted on predefined {name} network ")
        options = {k: str(v) for k, v in (body.get("Options") or {}).items()}
        _check_options(options)
        labels = dict(body.get("Labels") or {})
        internal = bool(body.get("Internal"))
        masq = _true(options.get(OPT_MASQ, "true"))
        all_confs = [c for c in ((body.get("IPAM") or {}).get("Config") or []) if c.get("Subnet") or c.get("Gateway")]
        confs = [c for c in all_confs if not _is_v6(c)]
        confs6 = [c for c in all_confs if _is_v6(c)]
        ipv6 = bool(body.get("EnableIPv6"))
        if confs6 and not ipv6:
            raise InvalidParameter("network has an IPv6 subnet but IPv6 is not enabled (--ipv6)")
        nid = secrets.token_hex(32)
        with host_lock():
            with self.db.transaction():
                if self.store.find_network(name) and self.store.find_network(name)[0].name == name:
                    raise Conflict(f"network with name {name} already exists")
                if confs:
                    conf = confs[0]
                    if not conf.get("Subnet"):
                        raise InvalidParameter("invalid pool request: a gateway needs a subnet")
                    subnet = ipam.parse_subnet(conf["Subnet"])
                    ipam.check_overlap(subnet, self._engine_subnets())
                    ip_range = ipam.parse_subnet(conf["IPRange"]) if conf.get("IPRange") else None
                    if ip_range and not ip_range.subnet_of(subnet):
                        raise InvalidParameter(f"invalid pool request: ip range {ip_range} is not in {subnet}")
                    gateway = ipam.parse_addr(conf["Gateway"], "gateway") if conf.get("Gateway") \
                        else ipam.first_host(subnet)
                    if gateway not in subnet:
                        raise InvalidParameter(f"invalid gateway {gateway}: not in subnet {subnet}")
                else:
                    subnet = ipam.choose_subnet(self._engine_subnets(), ipam.host_routes())
                    ip_range, gateway = None, ipam.first_host(subnet)
                v6 = self._choose_v6(confs6) if ipv6 else None
                bridge = options.get(OPT_NAME) or "nvbr-" + nid[:10]
                if len(bridge) > 15:
                    raise InvalidParameter(f"bridge name {bridge} is longer than 15 characters")
                net = NetRec(nid, name, time.time(), self._spec(subnet, ip_range, gateway, options, labels,
                                                                internal, bool(body.get("Attachable")),
                                                                masq, user_subnet=bool(confs), bridge=bridge))
                net.spec["Scope"] = body.get("Scope") or "local"
                if v6 is not None:
                    net.spec.update(EnableIPv6=True, Subnet6=str(v6[0]), Gateway6=str(v6[1]), UserSubnet6=bool(confs6),
                                    IPRange6=str(v6[2]) if v6[2] else "")
                self.store.add_network(net)
            try:
                self._materialize(net)
            except Exception:
                links.delete_link(net.bridge)
                self.store.delete_network(nid)
                self.sync_rules()
                raise
        return {"Id": nid, "Warning": ""}

    def _engine_subnets6(self) -> list[ipam.Net6]:
        return [ipaddress.IPv6Network(n.spec["Subnet6"]) for n in self.store.networks() if n.spec.get("Subnet6")]

    def _choose_v6(self, confs6: list[dict]) -> tuple[ipam.Net6, ipaddress.IPv6Address, ipam.Net6 | None]:
        """(subnet, gateway, ip range) of a dual-stack network: the user's ULA subnet, else a /64 of this root's
        ULA /48."""
        if not confs6:
            subnet = ipam.choose_subnet6(ipam.ula_base(self.roothash), self._engine_subnets6())
            return subnet, subnet.network_address + 1, None
        conf = confs6[0]
        if not conf.get("Subnet"):
            raise InvalidParameter("invalid pool request: a gateway needs a subnet")
        subnet = ipam.parse_subnet6(conf["Subnet"])
        ipam.check_overlap(subnet, self._engine_subnets6())
        gateway = ipam.parse_addr6(conf["Gateway"], "gateway") if conf.get("Gateway") else subnet.network_address + 1
        if gateway not in subnet:
            raise InvalidParameter(f"invalid gateway {gateway}: not in subnet {subnet}")
        ip_range = ipam.parse_subnet6(conf["IPRange"]) if conf.get("IPRange") else None
        if ip_range and not ip_range.subnet_of(subnet):
            raise InvalidParameter(f"invalid pool request: ip range {ip_range} is not in {subnet}")
        return subnet, gateway, ip_range

    def list(self, filters: dict[str, list[str]] | None = None) -> list[dict]:
        self.default_bridge()
        nets = [n for n in self.store.networks() if self._match(n, filters or {})]
        return [self.render(n, containers=False) for n in nets]

    def _match(self, n: NetRec, filters: dict[str, list[str]]) -> bool:
        checks = {
            "name": lambda v: v in n.name,
            "id": lambda v: n.id.startswith(v),
            "driver": lambda v: v == n.spec["Driver"],
            "scope": lambda v: v == "local",
            "type": lambda v: v == ("builtin" if n.spec.get("Predefined") else "custom"),
            "label": lambda v: self._label_match(n.spec.get("Labels") or {}, v),
            "dangling": lambda v: (v in ("true", "1")) == (not n.spec.get("Predefined")
                                                          and not self.store.endpoints(network_id=n.id)),
        }
        for key, values in filters.items():
            if key not in checks:
                raise InvalidParameter(f"invalid filter '{key}'")
            if values and not any(checks[key](v) for v in values):
                return False
        return True

    @staticmethod
    def _label_match(labels: dict, v: str) -> bool:
        k, eq, val = v.partition("=")
        return k in labels and (not eq or labels[k] == val)

    def inspect(self, ref: str) -> dict:
        return self.render(self.get(ref), containers=True)

    def render(self, n: NetRec, containers: bool) -> dict:
        s = n.spec
        ipam_conf = []
        if s.get("Subnet"):
            c = {"Subnet": s["Subnet"], "Gateway": s["Gateway"]}
            if s.get("IPRange"):
                c["IPRange"] = s["IPRange"]
            ipam_conf.append(c)
        if s.get("Subnet6"):
            ipam_conf.append({"Subnet": s["Subnet6"], "Gateway": s["Gateway6"],
                              **({"IPRange": s["IPRange6"]} if s.get("IPRange6") else {})})
        out = {"Name": n.name, "Id": n.id, "Created": _rfc3339(n.created), "Scope": s.get("Scope", "local"),
               "Driver": s["Driver"], "EnableIPv4": True, "EnableIPv6": bool(s.get("EnableIPv6")),
               "IPAM": {"Driver": "default", "Options": None if s.get("Predefined") else {}, "Config": ipam_conf},
               "Internal": bool(s.get("Internal")), "Attachable": bool(s.get("Attachable")), "Ingress": False,
               "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
               "Options": s.get("Options", {}), "Labels": s.get("Labels", {})}
        if containers:
            for ep in self.store.endpoints(network_id=n.id):
                out["Containers"][ep.container_id] = {
                    "Name": ep.spec.get("Name", ""), "EndpointID": ep.spec["EndpointID"],
                    "MacAddress": ep.spec["MacAddress"],
                    "IPv4Address": f"{ep.ip}/{ipaddress.IPv4Network(s['Subnet']).prefixlen}",
                    "IPv6Address": f"{ep.spec['IPv6']}/{ipaddress.IPv6Network(s['Subnet6']).prefixlen}"
                    if ep.spec.get("IPv6") and s.get("Subnet6") else ""}
        return out

    def remove(self, ref: str) -> None:
        n = self.get(ref)
        if n.spec.get("Predefined"):
            raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
        with self.db.transaction():
            if self.store.endpoints(network_id=n.id):
                raise Forbidden(f"error while removing network: network {n.name} id {n.id} has active endpoints")
            self.store.delete_network(n.id)
        links.delete_link(n.bridge)
        self.sync_rules()

    def prune(self, filters: dict[str, list[str]] | None = None) -> dict:
        filters = dict(filters or {})
        until = filters.pop("until", [])
        labels, nlabels = filters.pop("label", []), filters.pop("label!", [])
        deleted = []
        for n in self.store.networks():
            if n.spec.get("Predefined") or self.store.endpoints(network_id=n.id):
                continue
            if until and not all(n.created < _parse_until(u) for u in until):
                continue
            lab = n.spec.get("Labels") or {}
            if not all(self._label_match(lab, v) for v in labels) or any(self._label_match(lab, v) for v in nlabels):
                continue
            try:
                self.remove(n.id)
                deleted.append(n.name)
            except (Forbidden, NotFound):
                continue
        return {"NetworksDeleted": deleted}

    # kernel ------------------------------------------------------------------------------------------
    def _materialize(self, n: NetRec) -> None:
        """Bridge device + rules for n (idempotent)."""
        self._bridge_up(n)
        self.sync_rules()

    @staticmethod
    def _bridge_up(n: NetRec) -> None:
        """The bridge with its gateway address(es); no rules."""
        prefix = ipaddress.IPv4Network(n.spec["Subnet"]).prefixlen
        links.ensure_bridge(n.bridge, n.spec["Gateway"], prefix, n.spec.get("MTU", 1500))
        if n.spec.get("Subnet6"):
            links.ensure_bridge_v6(n.bridge, n.spec["Gateway6"], ipaddress.IPv6Network(n.spec["Subnet6"]).prefixlen)
        links.sysctl("net/ipv4/ip_forward", "1")  # hairpin and -p from outside are routed (as Docker)

    def sync_rules(self) -> None:
        """Render the nftables table from the database for the bridges that exist right now.

        Read and apply under one lock per root: two containers publishing ports at once (compose scaling a
        service) would otherwise each render the ports the database held before the other's, and the later
        write would drop the other's DNAT rule."""
        with file_lock(self.paths.run / "nft.lock"):
            self._sync_rules()

    def _sync_rules(self) -> None:
        bridges, addr_of = [], {}
        for n in self.store.networks():
            if n.spec["Driver"] != "bridge" or not links.link_exists(n.bridge):
                continue
            icc = _true((n.spec.get("Options") or {}).get(OPT_ICC, "true"))
            bridges.append(nft.BridgeRules(n.bridge, n.spec["Subnet"], self.outbound and not n.spec.get("Internal"),
                                           bool(n.spec.get("Masquerade")), icc))
            for ep in self.store.endpoints(network_id=n.id):
                if ep.spec.get("Gateway"):
                    addr_of[ep.container_id] = ep.ip
        rules = [nft.PortRule(p["proto"], p["host_ip"], p["host_port"], addr_of[p["container_id"]], p["port"])
                 for p in self.store.ports() if p["container_id"] in addr_of]
        nft.apply(self.table, bridges, rules)


def _true(value: str) -> bool:
    return value.lower() in ("1", "t", "true")


def _check_options(options: dict[str, str]) -> None:
    """The bridge driver's parsing of its options, with moby's words (Go's strconv errors included)."""
    def fail(label: str, value: str, why: str) -> None:
        raise InvalidParameter(f"failed to parse {label} value: {value} ({why})")
    for label in (OPT_ICC, OPT_MASQ):
        if label in options and options[label].lower() not in ("1", "t", "true", "0", "f", "false"):
            fail(label, options[label], f'strconv.ParseBool: parsing "{options[label]}": invalid syntax')
    if OPT_MTU in options:
        try:
            mtu = int(options[OPT_MTU])
        except ValueError:
            fail(OPT_MTU, options[OPT_MTU], f'strconv.Atoi: parsing "{options[OPT_MTU]}": invalid syntax')
        if not 68 <= mtu <= 65535:
            raise InvalidParameter(f"invalid MTU number: {mtu}")


def _is_v6(conf: dict) -> bool:
    return ":" in (conf.get("Subnet") or conf.get("Gateway") or "")


def _parse_until(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        from datetime import datetime
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
