"""The network tables: networks, endpoints (a container on a network), sandboxes (a container's network
namespace with its DNS settings) and published ports. The DNS daemon (network/netd.py) answers from
`peers()` on its own read-only connection, so the names it answers are always the committed truth."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from nanovisor.store.db import Database, dumps, loads


@dataclass
class NetRec:
    id: str
    name: str
    created: float
    spec: dict

    @property
    def bridge(self) -> str:
        return self.spec["Bridge"]

    @property
    def is_default(self) -> bool:
        return bool(self.spec.get("Default"))


@dataclass
class EndpointRec:
    network_id: str
    container_id: str
    ip: str
    spec: dict = field(default_factory=dict)


class NetStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # networks ----------------------------------------------------------------------------------------
    @staticmethod
    def _net(row: sqlite3.Row) -> NetRec:
        return NetRec(row["id"], row["name"], row["created"], loads(row["spec"]))

    def networks(self) -> list[NetRec]:
        return [self._net(r) for r in self.db.query("SELECT * FROM networks ORDER BY created")]

    def network(self, nid: str) -> NetRec | None:
        row = self.db.query_one("SELECT * FROM networks WHERE id = ?", (nid,))
        return self._net(row) if row else None

    def find_network(self, ref: str) -> list[NetRec]:
        """Docker's lookup order: exact id, exact name, then id prefix (may be ambiguous)."""
        for sql in ("SELECT * FROM networks WHERE id = ?", "SELECT * FROM networks WHERE name = ?"):
            row = self.db.query_one(sql, (ref,))
            if row:
                return [self._net(row)]
        if ref and all(c in "0123456789abcdef" for c in ref):
            return [self._net(r) for r in self.db.query("SELECT * FROM networks WHERE id LIKE ?", (ref + "%",))]
        return []

    def add_network(self, net: NetRec) -> None:
        self.db.execute("INSERT INTO networks (id, name, created, spec) VALUES (?, ?, ?, ?)",
                        (net.id, net.name, net.created, dumps(net.spec)))

    def delete_network(self, nid: str) -> None:
        self.db.execute("DELETE FROM networks WHERE id = ?", (nid,))

    # endpoints ---------------------------------------------------------------------------------------
    @staticmethod
    def _ep(row: sqlite3.Row) -> EndpointRec:
        return EndpointRec(row["network_id"], row["container_id"], row["ip"], loads(row["spec"]))

    def endpoints(self, network_id: str | None = None, container_id: str | None = None) -> list[EndpointRec]:
        sql, args = "SELECT * FROM net_endpoints WHERE 1=1", []
        if network_id is not None:
            sql += " AND network_id = ?"
            args.append(network_id)
        if container_id is not None:
            sql += " AND container_id = ?"
            args.append(container_id)
        return [self._ep(r) for r in self.db.query(sql + " ORDER BY rowid", tuple(args))]

    def ips(self, network_id: str) -> list[str]:
        """Addresses taken on a network (IPAM), without parsing every endpoint's spec."""
        return [r["ip"] for r in self.db.query("SELECT ip FROM net_endpoints WHERE network_id = ?", (network_id,))]

    def add_endpoint(self, ep: EndpointRec) -> None:
        self.db.execute("INSERT INTO net_endpoints (network_id, container_id, ip, spec) VALUES (?, ?, ?, ?)",
                        (ep.network_id, ep.container_id, ep.ip, dumps(ep.spec)))

    def update_endpoint(self, ep: EndpointRec) -> None:
        self.db.execute("UPDATE net_endpoints SET spec = ? WHERE network_id = ? AND container_id = ?",
                        (dumps(ep.spec), ep.network_id, ep.container_id))

    def delete_endpoint(self, network_id: str, container_id: str) -> None:
        self.db.execute("DELETE FROM net_endpoints WHERE network_id = ? AND container_id = ?",
                        (network_id, container_id))

    # sandboxes ---------------------------------------------------------------------------------------
    def sandbox(self, cid: str) -> dict | None:
        row = self.db.query_one("SELECT spec FROM net_sandboxes WHERE container_id = ?", (cid,))
        return loads(row["spec"]) if row else None

    def sandboxes(self) -> dict[str, dict]:
        return {r["container_id"]: loads(r["spec"]) for r in self.db.query("SELECT * FROM net_sandboxes")}

    def put_sandbox(self, cid: str, spec: dict) -> None:
        self.db.execute("INSERT OR REPLACE INTO net_sandboxes (container_id, spec) VALUES (?, ?)",
                        (cid, dumps(spec)))

    def delete_sandbox(self, cid: str) -> None:
        self.db.execute("DELETE FROM net_sandboxes WHERE container_id = ?", (cid,))

    # published ports ---------------------------------------------------------------------------------
    def ports(self, container_id: str | None = None) -> list[dict]:
        if container_id is None:
            rows = self.db.query("SELECT * FROM net_ports ORDER BY rowid")
        else:
            rows = self.db.query("SELECT * FROM net_ports WHERE container_id = ? ORDER BY rowid", (container_id,))
        return [dict(loads(r["spec"]), proto=r["proto"], host_ip=r["host_ip"], host_port=r["host_port"],
                     container_id=r["container_id"]) for r in rows]

    def add_port(self, m: dict) -> None:
        spec = {k: v for k, v in m.items() if k not in ("proto", "host_ip", "host_port", "container_id")}
        self.db.execute("INSERT INTO net_ports (proto, host_ip, host_port, container_id, spec) VALUES (?,?,?,?,?)",
                        (m["proto"], m["host_ip"], m["host_port"], m["container_id"], dumps(spec)))

    def delete_ports(self, container_id: str) -> None:
        self.db.execute("DELETE FROM net_ports WHERE container_id = ?", (container_id,))


PEERS_SQL = ("SELECT n.name, n.spec AS nspec, e.ip, e.spec FROM net_endpoints e JOIN networks n ON n.id = e.network_id "
             "WHERE e.network_id IN (SELECT network_id FROM net_endpoints WHERE container_id = ?)")


def peers(conn: sqlite3.Connection, cid: str) -> list[tuple[str, str, str, str]]:
    """(network name, network spec JSON, ip, endpoint spec JSON) of every endpoint on a network cid is on."""
    return conn.execute(PEERS_SQL, (cid,)).fetchall()


OWN_SQL = ("SELECT n.name, e.spec FROM net_endpoints e JOIN networks n ON n.id = e.network_id "
           "WHERE e.container_id = ?")


def own_endpoints(conn: sqlite3.Connection, cid: str) -> list[tuple[str, str]]:
    """(network name, endpoint spec JSON) of cid's own endpoints (netd reads its legacy links there)."""
    return conn.execute(OWN_SQL, (cid,)).fetchall()


PUBLISHED_SQL = ("SELECT p.spec, e.ip, e.spec FROM net_ports p JOIN net_endpoints e ON e.container_id = p.container_id "
                 "WHERE p.proto = ? AND p.host_ip = ? AND p.host_port = ?")


def published_endpoints(conn: sqlite3.Connection, proto: str, host_ip: str,
                        host_port: int) -> list[tuple[str, str, str]]:
    """(port spec JSON, endpoint ip, endpoint spec JSON) of the container publishing host_ip:host_port, one row
    per endpoint (netd's IPv6 proxy connects to the one holding the default route, as the DNAT rules do)."""
    return conn.execute(PUBLISHED_SQL, (proto, host_ip, host_port)).fetchall()
