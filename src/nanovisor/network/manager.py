"""NetworkManager: what the engine calls around a container's life.

Order (see README in this package): create_netns before the runtime creates the container (its config
joins that path), attach before start, detach + delete_netns after exit, restore when `serve` starts.
Each container gets one veth per network (container side eth0, eth1, ... created directly in its
namespace), an address from the network's subnet, the default route through its first non-internal
network, its published ports as DNAT rules, and its DNS sockets (127.0.0.11:53 in its namespace) held
by netd.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from pathlib import Path

from nanovisor.bundle import etcfiles
from nanovisor.errors import Conflict, Forbidden, InvalidParameter, NotFound, SystemError_
from nanovisor.network import ipam, links, netd, nsutil, ports
from nanovisor.network.model import EndpointRec, NetRec
from nanovisor.network.networks import Networks, _env_flag, host_lock
from nanovisor.network.wanted import wanted_endpoints
from nanovisor.paths import Paths
from nanovisor.store.db import Database

EMPTY_EP = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
            "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}


def _mac(ip: str) -> str:
    """Docker's classic 02:42 + IPv4 scheme: stable, unique on a bridge, readable."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


def _addr(host_ip: str) -> str:
    return f"[{host_ip}]" if ":" in host_ip else host_ip or "0.0.0.0"


def _reserve(w: ports.Want, taken: list[dict]) -> list[tuple[str, int, socket.socket]]:
    """(host address, host port, reservation socket) for w: a port on every address is held on IPv4 and, where
    the host has IPv6, on [::] too (ports.reserve_v6_twin); an ephemeral pick (-P) whose twin is taken picks
    again. OSError(EADDRINUSE, filename=the address) when taken."""
    for _ in range(16 if w.low == 0 else 1):
        port, s = ports.reserve(w, taken)
        if w.host_ip:
            return [(w.host_ip, port, s)]
        try:
            twin = ports.reserve_v6_twin(w.proto, port)
        except OSError as e:
            s.close()
            if e.errno == 98 and w.low == 0:
                continue
            raise OSError(e.errno, e.strerror, ports.ALL_V6) from e
        return [("", port, s)] + ([(ports.ALL_V6, port, twin)] if twin else [])
    raise OSError(98, "port is already allocated", ports.ALL_V6)


class NetworkManager(Networks):
    def __init__(self, paths: Paths, db: Database, *, outbound: bool | None = None,
                 dns_forward: bool | None = None) -> None:
        super().__init__(paths, db, outbound=outbound)
        self.dns_forward = _env_flag("NANOVISOR_DNS_FORWARD") if dns_forward is None else dns_forward
        self.netd = netd.Client(paths.run, paths.db)

    # namespaces --------------------------------------------------------------------------------------
    def netns_path(self, container_id: str) -> str:
        return str(self.paths.netns / container_id)

    def create_netns(self, container_id: str) -> str:
        path = self.paths.netns / container_id
        nsutil.create(path, links.lo_up)
        return str(path)

    def delete_netns(self, container_id: str) -> None:
        nsutil.delete(self.paths.netns / container_id)

    def lookup_netns(self, container_id: str) -> str | None:
        """For --network container:X: X's namespace path if it has a live one (the engine resolves X)."""
        path = self.paths.netns / container_id
        return str(path) if path.exists() and nsutil.is_mountpoint(path) else None

    # attach / detach ---------------------------------------------------------------------------------
    def attach(self, container_id: str, netns_path: str, host_config: dict, networking_config: dict,
               hostname: str, exposed_ports: dict, name: str | None = None,
               link_hosts: list[tuple[str, str]] = ()) -> dict:
        """link_hosts: /etc/hosts lines of legacy links (default bridge), after the --add-host ones."""
        hc = host_config or {}
        mode = hc.get("NetworkMode") or "default"
        extra = etcfiles.parse_extra_hosts(hc.get("ExtraHosts"))
        if mode == "host":
            return {"NetworkSettings": self._settings({"host": dict(EMPTY_EP, NetworkID=self.get("host").id)}, {}),
                    "hosts": etcfiles.host_hosts(extra), "resolv_conf": self._read("/etc/resolv.conf")}
        if mode.startswith("container:"):
            return {"NetworkSettings": self._settings({}, {}), "hosts": None, "resolv_conf": None}
        self.detach(container_id)  # a restart: start from nothing
        sandbox = {"netns": netns_path, "hostname": hostname, "name": self._container_name(container_id, name),
                   "extra": extra, "dns": hc.get("Dns") or [], "dns_search": hc.get("DnsSearch") or [],
                   "dns_options": hc.get("DnsOptions") or [], "domain": "", "next_if": 0,
                   "exposed": exposed_ports or {}, "bindings": hc.get("PortBindings") or {},
                   "links": [list(e) for e in link_hosts]}
        wanted = wanted_endpoints(hc, networking_config)
        if mode == "none" or not wanted:  # none, or every network disconnected: loopback only
            self.store.put_sandbox(container_id, sandbox)
            eps = {"none": dict(EMPTY_EP, NetworkID=self.get("none").id)} if mode == "none" else {}
            return {"NetworkSettings": self._settings(eps, {}, netns_path),
                    "hosts": etcfiles.hosts_file(hostname, (), extra),
                    "resolv_conf": self._resolv(sandbox, embedded=False)}
        order, seen = [], set()
        for ref in wanted:  # a network named twice (by name and by id) is joined once
            net_id = self.get(ref).id
            if net_id not in seen:
                seen.add(net_id)
                order.append(ref)
        try:
            self.store.put_sandbox(container_id, sandbox)
            for ref in order:
                self._add_endpoint(container_id, ref, wanted[ref], sandbox)
            self._publish(container_id, hc, exposed_ports)
            if self.store.ports(container_id):  # the table only names containers that publish ports
                self.sync_rules()
            self._hold_dns(container_id, sandbox)
        except Exception:
            self.detach(container_id)
            raise
        return self.files_and_settings(container_id)

    def detach(self, container_id: str, netns_going: bool = False) -> None:
        """netns_going: the caller deletes the namespace next, and the kernel then destroys the veth pairs
        in the background; deleting each one here would wait ~30 ms per pair for no gain."""
        eps = self.store.endpoints(container_id=container_id)
        had_ports = bool(self.store.ports(container_id))
        for ep in eps if not netns_going else ():
            links.delete_link(ep.spec["HostIf"])
        with self.db.transaction():
            for ep in eps:
                self.store.delete_endpoint(ep.network_id, container_id)
            self.store.delete_ports(container_id)
            self.store.delete_sandbox(container_id)
        self.netd.release(container_id)
        if had_ports:
            self.sync_rules()

    # connect / disconnect (running containers) -------------------------------------------------------
    def connect(self, network: str, container_id: str, endpoint_config: dict | None = None) -> dict:
        """Returns the new files and settings, as attach does (the engine rewrites /etc/hosts)."""
        net = self.get(network)
        if net.spec["Driver"] != "bridge":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        sandbox = self.store.sandbox(container_id)
        if sandbox is None or not self.store.endpoints(container_id=container_id):
            raise Conflict(f"container {container_id} is not running on a bridge network")
        had_dns, had_external = self._embedded(container_id), self._external(container_id)
        self._add_endpoint(container_id, net.id, endpoint_config or {}, sandbox)
        if not had_dns:  # first user network: its resolv.conf now names 127.0.0.11, so answer there
            self._hold_dns(container_id, sandbox)
        elif not had_external and self._external(container_id):  # out of internal-only: forward from now on
            self.netd.hold(container_id, [], self._upstreams(container_id, sandbox))
        if self.store.ports(container_id):
            self.sync_rules()
        return self.files_and_settings(container_id)

    def disconnect(self, network: str, container_id: str, force: bool = False) -> dict:
        net = self.get(network)
        eps = {ep.network_id: ep for ep in self.store.endpoints(container_id=container_id)}
        if net.id not in eps:
            if force:
                return self.files_and_settings(container_id)
            raise NotFound(f"container {container_id} is not connected to network {net.name}")
        ep = eps.pop(net.id)
        links.delete_link(ep.spec["HostIf"])
        self.store.delete_endpoint(net.id, container_id)
        if ep.spec.get("Gateway"):
            sandbox = self.store.sandbox(container_id) or {}
            self._pick_gateway(container_id, sandbox.get("netns"))
        self.sync_rules()
        return self.files_and_settings(container_id)

    def drop_link_host(self, container_id: str, alias: str) -> dict:
        """A legacy link removed: its /etc/hosts line goes; returns the new files and settings."""
        sandbox = self.store.sandbox(container_id)
        if sandbox is None:
            return {}
        sandbox["links"] = [e for e in sandbox.get("links", []) if e[1].split()[0] != alias]
        self.store.put_sandbox(container_id, sandbox)
        return self.files_and_settings(container_id)

    def update_link_host(self, container_id: str, alias: str, ip: str) -> dict:
        """A linked child has a new address: the parent's /etc/hosts line for alias follows."""
        sandbox = self.store.sandbox(container_id)
        if sandbox is None:
            return {}
        sandbox["links"] = [[ip if names.split()[0] == alias else old, names] for old, names in
                            sandbox.get("links", [])]
        self.store.put_sandbox(container_id, sandbox)
        return self.files_and_settings(container_id)

    def rename(self, container_id: str, new_name: str) -> None:
        """Container renamed: its DNS name follows."""
        old = (self.store.sandbox(container_id) or {}).get("name")
        for ep in self.store.endpoints(container_id=container_id):
            if ep.spec.get("DNSNames") and old:
                ep.spec["DNSNames"] = [new_name.lstrip("/") if n == old else n for n in ep.spec["DNSNames"]]
            ep.spec["Name"] = new_name.lstrip("/")
            self.store.update_endpoint(ep)
        sandbox = self.store.sandbox(container_id)
        if sandbox:
            sandbox["name"] = new_name.lstrip("/")
            self.store.put_sandbox(container_id, sandbox)

    # restore / teardown ------------------------------------------------------------------------------
    def restore(self) -> None:
        """After a reboot or a `serve` restart: bridges for every network, endpoints of containers whose
        namespace still lives, their sockets in netd, and the ruleset; containers whose namespace is gone
        are detached. Safe to call any number of times."""
        present = links.link_names()
        for n in self.store.networks():
            if n.spec["Driver"] == "bridge" and (not n.is_default or n.bridge in present
                                                  or self.store.endpoints(network_id=n.id)):
                self._materialize_quiet(n)
        held = (self.netd.request({"op": "list"}, spawn=False) or {}).get("held", {})
        for cid, sandbox in self.store.sandboxes().items():
            netns = sandbox.get("netns")
            if not netns or not Path(netns).exists() or not nsutil.is_mountpoint(Path(netns)):
                self.detach(cid)
                continue
            inside = links.ns_links(Path(netns))
            for ep in self.store.endpoints(container_id=cid):
                if ep.spec["HostIf"] not in present or ep.spec["IfName"] not in inside:
                    if ep.spec["IfName"] in inside:
                        # its peer is not here: `serve` now runs in another network namespace than the one
                        # that made it (or the host side was deleted); replace it with a pair on our bridge
                        links.delete_ns_link(Path(netns), ep.spec["IfName"])
                    net = self.store.network(ep.network_id)
                    self._plumb(net, ep, Path(netns))
            if cid not in held:
                socks = self._rereserve(cid)
                self._hold_dns(cid, sandbox, socks)
        self.sync_rules()

    def teardown(self) -> None:
        """Remove every kernel object and process of this root (not the database): tests, uninstall."""
        for cid in list(self.store.sandboxes()):
            self.detach(cid)
            self.delete_netns(cid)
        for n in self.store.networks():
            if n.spec["Driver"] == "bridge":
                links.delete_link(n.bridge)
        self.sync_rules()
        self.netd.stop()
        if self.paths.netns.exists() and nsutil.is_mountpoint(self.paths.netns):
            if not any(self.paths.netns.iterdir()):
                nsutil.umount(str(self.paths.netns))

    # internals ---------------------------------------------------------------------------------------
    def _materialize_quiet(self, n: NetRec) -> None:
        self._bridge_up(n)

    def _container_name(self, cid: str, name: str | None) -> str:
        if name:
            return name.lstrip("/")
        from nanovisor.store.containers import ContainerTable

        name = ContainerTable(self.db).name_of(cid)
        return name.lstrip("/") if name else cid[:12]

    def _add_endpoint(self, cid: str, ref: str, conf: dict, sandbox: dict) -> EndpointRec:
        net = self.get(ref)
        if net.spec["Driver"] != "bridge":
            raise InvalidParameter(f"container cannot be connected to network {net.name} and to other networks")
        if net.is_default and (conf.get("Aliases") or []):
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
        want_ip = ((conf.get("IPAMConfig") or {}).get("IPv4Address") or "").strip()
        want_ip6 = ((conf.get("IPAMConfig") or {}).get("IPv6Address") or "").strip()
        if want_ip and not net.spec.get("UserSubnet") or want_ip6 and not net.spec.get("UserSubnet6"):
            raise InvalidParameter("user specified IP address is supported only when connecting to networks "
                                   "with user configured subnets")
        present = links.link_exists(net.bridge)
        if not net.is_default or not present:
            with host_lock():
                self._materialize_quiet(net)
        if not present:  # a new bridge (the default one appears on first use) joins the isolation rules now
            self.sync_rules()
        subnet = ipaddress.IPv4Network(net.spec["Subnet"])
        ifname = f"eth{sandbox['next_if']}"
        with self.db.transaction():
            existing = self.store.endpoints(container_id=cid)
            if any(e.network_id == net.id for e in existing):
                raise Forbidden(f"endpoint with name {sandbox['name']} already exists in network {net.name}")
            used = {ipaddress.IPv4Address(ip) for ip in self.store.ips(net.id)}
            used.add(ipaddress.IPv4Address(net.spec["Gateway"]))
            if want_ip:
                ip = ipam.request(subnet, ipam.parse_addr(want_ip), used)
            else:
                rng = ipaddress.IPv4Network(net.spec["IPRange"]) if net.spec.get("IPRange") else None
                ip = ipam.allocate(subnet, rng, used)
            ip6 = self._address6(net, want_ip6)
            # the default route: the non-internal network of highest GwPriority (API 1.48), the first on a tie
            priority = int(conf.get("GwPriority") or 0)
            holder = next((e for e in existing if e.spec.get("Gateway")), None)
            gateway = not net.spec.get("Internal") and (holder is None or priority > holder.spec.get("GwPriority", 0))
            if gateway and holder is not None:
                holder.spec["Gateway"] = False
                self.store.update_endpoint(holder)
            aliases = list(conf.get("Aliases") or [])
            dns_names = None if net.is_default else [sandbox["name"], *aliases, cid[:12]]
            ep = EndpointRec(net.id, cid, str(ip), {
                "EndpointID": hashlib.sha256(f"{net.id}/{cid}/{ip}".encode()).hexdigest(),
                "MacAddress": (conf.get("MacAddress") or "").replace("-", ":").lower() or _mac(str(ip)),
                "IfName": ifname, "Name": sandbox["name"],
                "HostIf": "nv" + hashlib.sha256(f"{self.roothash}/{net.id}/{cid}".encode()).hexdigest()[:12],
                "Aliases": aliases or None, "Links": conf.get("Links") or None, "DNSNames": dns_names,
                "Gateway": gateway, "GwPriority": priority,
                "IPAMConfig": conf.get("IPAMConfig") or None, "IPv6": str(ip6) if ip6 else ""})
            self.store.add_endpoint(ep)
            sandbox["next_if"] += 1
            self.store.put_sandbox(cid, sandbox)
        self._plumb(net, ep, Path(sandbox["netns"]))
        return ep

    def _address6(self, net: NetRec, want: str) -> ipaddress.IPv6Address | None:
        """The endpoint's IPv6 address on a dual-stack network (inside the caller's transaction)."""
        if not net.spec.get("Subnet6"):
            if want:
                raise InvalidParameter(f"invalid IPv6 address {want}: network {net.name} has no IPv6 subnet")
            return None
        subnet = ipaddress.IPv6Network(net.spec["Subnet6"])
        used = {ipaddress.IPv6Address(e.spec["IPv6"]) for e in self.store.endpoints(network_id=net.id)
                if e.spec.get("IPv6")} | {ipaddress.IPv6Address(net.spec["Gateway6"])}
        if not want:
            rng = ipaddress.IPv6Network(net.spec["IPRange6"]) if net.spec.get("IPRange6") else None
            return ipam.allocate6(subnet, used, rng)
        addr = ipam.parse_addr6(want)
        if addr not in subnet or addr == subnet.network_address:
            raise InvalidParameter(f"invalid address {want}: requested address is out of range")
        if addr in used:
            raise Forbidden("Address already in use")
        return addr

    def _plumb(self, net: NetRec, ep: EndpointRec, netns: Path) -> None:
        prefix = ipaddress.IPv4Network(net.spec["Subnet"]).prefixlen
        v6 = None
        if ep.spec.get("IPv6") and net.spec.get("Subnet6"):
            v6 = (ep.spec["IPv6"], ipaddress.IPv6Network(net.spec["Subnet6"]).prefixlen,
                  net.spec["Gateway6"] if ep.spec.get("Gateway") else None)
        try:
            links.add_endpoint(netns, net.bridge, ep.spec["HostIf"], ep.spec["IfName"], ep.spec["MacAddress"],
                               ep.ip, prefix, net.spec["Gateway"] if ep.spec.get("Gateway") else None,
                               net.spec.get("MTU", 1500), v6)
        except Exception as e:
            links.delete_link(ep.spec["HostIf"])
            raise SystemError_(f"failed to set up container networking: {e}") from e

    def _pick_gateway(self, cid: str, netns: str | None) -> None:
        """After the gateway network left: the next non-internal network becomes the default route."""
        eps = sorted(self.store.endpoints(container_id=cid), key=lambda e: -e.spec.get("GwPriority", 0))
        for ep in eps:
            net = self.store.network(ep.network_id)
            if net and not net.spec.get("Internal"):
                ep.spec["Gateway"] = True
                self.store.update_endpoint(ep)
                if netns:
                    v6 = net.spec.get("Gateway6") if ep.spec.get("IPv6") else None
                    links.set_default_route(Path(netns), ep.spec["IfName"], net.spec["Gateway"], v6)
                return

    def _publish(self, cid: str, hc: dict, exposed: dict) -> None:
        wants = ports.wanted(hc.get("PortBindings"), bool(hc.get("PublishAllPorts")), exposed)
        if not wants:
            return
        if not any(e.spec.get("Gateway") for e in self.store.endpoints(container_id=cid)):
            return  # only internal networks: nothing can reach a published port (Docker skips them too)
        socks: list[tuple[str, socket.socket]] = []
        try:
            with self.db.transaction():
                taken = self.store.ports()
                for w in wants:
                    try:
                        held = _reserve(w, taken)
                    except OSError as e:
                        ep = self.store.endpoints(container_id=cid)[0]
                        raise SystemError_(
                            f"driver failed programming external connectivity on endpoint {ep.spec['Name']} "
                            f"({ep.spec['EndpointID']}): Bind for {_addr(e.filename or w.host_ip)}:{w.low or 0} "
                            f"failed: port is already allocated" if e.errno == 98 else
                            f"driver failed programming external connectivity: {e}") from e
                    for host_ip, port, s in held:
                        socks.append(("proxy" if ports.is_proxied(host_ip) else "port", s))
                        m = {"proto": w.proto, "host_ip": host_ip, "host_port": port, "container_id": cid,
                             "port": w.port}
                        self.store.add_port(m)
                        taken.append(m)
            if socks:
                self.netd.hold(cid, socks, upstreams=[])
        finally:
            for _, s in socks:
                s.close()

    def _rereserve(self, cid: str) -> list[tuple[str, socket.socket]]:
        out = []
        for p in self.store.ports(cid):
            try:
                _, s = ports.reserve(ports.Want(p["proto"], p["port"], p["host_ip"], p["host_port"],
                                                p["host_port"]), [])
                out.append(("proxy" if ports.is_proxied(p["host_ip"]) else "port", s))
            except OSError:
                continue  # someone took it meanwhile; the DNAT rule still wins
        return out

    def _hold_dns(self, cid: str, sandbox: dict, extra: list[tuple[str, socket.socket]] = ()) -> None:
        """Bind 127.0.0.11:53 (UDP+TCP) inside the container's namespace and hand the sockets to netd."""
        def bind() -> list[tuple[str, socket.socket]]:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((etcfiles.EMBEDDED_DNS, 53))
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((etcfiles.EMBEDDED_DNS, 53))
            t.listen(16)
            return [("dns-udp", u), ("dns-tcp", t)]
        socks = list(extra)
        try:
            if self._embedded(cid):
                socks += nsutil.in_netns(sandbox["netns"], bind)
            if socks:
                self.netd.hold(cid, socks, self._upstreams(cid, sandbox))
        finally:
            for _, s in socks:
                s.close()

    def _upstreams(self, cid: str, sandbox: dict) -> list[str]:
        """Where netd forwards names it does not know, from the host's namespace: nowhere for a container
        attached only to internal networks (dockerd 26+ drops those requests too)."""
        if not self.dns_forward or not self._external(cid):
            return []
        return etcfiles.upstreams(sandbox.get("dns") or [])

    def _external(self, cid: str) -> bool:
        return any(not (self.store.network(e.network_id) or NetRec("", "", 0, {"Internal": True})).spec.get("Internal")
                   for e in self.store.endpoints(container_id=cid))

    def _embedded(self, cid: str) -> bool:
        return any(not (self.store.network(e.network_id) or NetRec("", "", 0, {"Default": True})).is_default
                   for e in self.store.endpoints(container_id=cid))

    def _resolv(self, sandbox: dict, embedded: bool) -> str:
        return etcfiles.resolv_conf(sandbox.get("dns") or [], sandbox.get("dns_search") or [],
                                    sandbox.get("dns_options") or [], embedded=embedded)

    @staticmethod
    def _read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    def files_and_settings(self, cid: str) -> dict:
        """NetworkSettings + /etc/hosts + /etc/resolv.conf for a container as attached now."""
        sandbox = self.store.sandbox(cid) or {}
        eps, gw_ip = {}, []
        for ep in self.store.endpoints(container_id=cid):
            net = self.store.network(ep.network_id)
            if net is None:
                continue
            eps[net.name] = dict(EMPTY_EP, IPAMConfig=ep.spec.get("IPAMConfig"), Aliases=ep.spec.get("Aliases"),
                                 Links=ep.spec.get("Links"), GwPriority=ep.spec.get("GwPriority", 0),
                                 MacAddress=ep.spec["MacAddress"], NetworkID=net.id,
                                 EndpointID=ep.spec["EndpointID"], Gateway=net.spec["Gateway"], IPAddress=ep.ip,
                                 IPPrefixLen=ipaddress.IPv4Network(net.spec["Subnet"]).prefixlen,
                                 DNSNames=ep.spec.get("DNSNames"))
            gw_ip.append(ep.ip)
            if ep.spec.get("IPv6") and net.spec.get("Subnet6"):
                eps[net.name].update(GlobalIPv6Address=ep.spec["IPv6"], IPv6Gateway=net.spec["Gateway6"],
                                     GlobalIPv6PrefixLen=ipaddress.IPv6Network(net.spec["Subnet6"]).prefixlen)
                gw_ip.append(ep.spec["IPv6"])
        mapped = self.store.ports(cid)
        port_map = ports.port_map(sandbox.get("exposed"), sandbox.get("bindings"), mapped)
        extra = [(ip, name) for ip, name in sandbox.get("extra", [])]
        extra = [(self._host_gateway(eps) if ip == "host-gateway" else ip, name) for ip, name in extra]
        extra += [(ip, names) for ip, names in sandbox.get("links", [])]
        return {"NetworkSettings": self._settings(eps, port_map, sandbox.get("netns", "")),
                "hosts": etcfiles.hosts_file(sandbox.get("hostname", cid[:12]), gw_ip, extra,
                                             domainname=sandbox.get("domain", "")),
                "resolv_conf": self._resolv(sandbox, self._embedded(cid))}

    @staticmethod
    def _host_gateway(eps: dict) -> str:
        return next((e["Gateway"] for e in eps.values() if e["Gateway"]), "127.0.0.1")

    @staticmethod
    def _settings(eps: dict, port_map: dict, sandbox_key: str = "") -> dict:
        b = eps.get("bridge") or {}
        return {"Bridge": "", "SandboxID": hashlib.sha256(sandbox_key.encode()).hexdigest() if sandbox_key else "",
                "SandboxKey": sandbox_key, "HairpinMode": False, "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0, "Ports": port_map, "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None, "EndpointID": b.get("EndpointID", ""), "Gateway": b.get("Gateway", ""),
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": b.get("IPAddress", ""),
                "IPPrefixLen": b.get("IPPrefixLen", 0), "IPv6Gateway": "", "MacAddress": b.get("MacAddress", ""),
                "Networks": eps}
