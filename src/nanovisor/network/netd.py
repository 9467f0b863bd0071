"""netd: one small helper process per engine root that owns the sockets a container's networking needs
beyond the kernel's own state, so they outlive the CLI and `serve`:

* the embedded DNS server: for each container on a user-defined network, the engine binds UDP and TCP
  sockets to 127.0.0.11:53 *inside the container's namespace* and passes them here (SCM_RIGHTS). There is
  no DNAT and no per-container process or thread; the socket identifies the asking container, and names are
  looked up in the engine database (only networks the container shares, as in Docker).
* port reservations: a bound socket per published host port, so no host program can take the port the
  DNAT rules send elsewhere (what Docker's port allocator + proxy guarantee).
* the IPv6 side of published ports ([::]:port, [::1]:port): a bound socket whose TCP connections or UDP
  datagrams are relayed to the container's address, as dockerd's docker-proxy does (the IPv6 loopback cannot
  be DNATed onto a bridge). The target is read from the database at each new connection or UDP flow, so it
  follows a moved default route as the DNAT rules do. TCP: one thread per direction of each connection; UDP:
  one connected socket per client address in the selector, dropped after UDP_FLOW_IDLE seconds unused.

Per container it costs three file descriptors. It is spawned on demand, found through a pidfile and a
control socket under the root's run directory, and exits after `idle` seconds without containers.
Forwarding of unknown names is per container (its upstream list, empty when forwarding is disabled).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import selectors
import socket
import sqlite3
import struct
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from nanovisor.network import dnsproto, legacy_links
from nanovisor.store.networks import own_endpoints, peers, published_endpoints

MAX_FDS = 64
UDP_FLOW_IDLE = 60.0


@contextmanager
def _flock(path: Path, blocking: bool = True):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class Names:
    """Answers from the database: which addresses a name has for the asking container."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, timeout=5, isolation_level=None)

    def _peers(self, cid: str) -> list[tuple[str, str, dict]]:
        """(network name, ip, endpoint spec) of every endpoint sharing a DNS-enabled network with cid."""
        out = []
        for netname, nspec, ip, spec in peers(self.conn, cid):
            if json.loads(nspec).get("Default"):
                continue
            spec = json.loads(spec)
            out.append((netname, ip, spec))
            if spec.get("IPv6"):  # a dual-stack network: the AAAA answer
                out.append((netname, spec["IPv6"], spec))
        return out

    def _link_target(self, cid: str, name: str) -> tuple[str, str] | None:
        """A legacy link of the asking container on a user network: (network name, child name) for its alias."""
        for netname, spec in own_endpoints(self.conn, cid):
            target = legacy_links.aliases(json.loads(spec).get("Links")).get(name)
            if target:
                return netname, target.lower()
        return None

    def lookup(self, cid: str, name: str) -> tuple[bool, list[str]]:
        """(known, addresses) for name; 'name.network' is accepted too, and the asker's own link aliases."""
        link = self._link_target(cid, name)
        if link is not None:
            ips = [ip for netname, ip, spec in self._peers(cid)
                   if netname == link[0] and link[1] in {n.lower() for n in spec.get("DNSNames") or []}]
            if ips:
                return True, ips
        ips: list[str] = []
        known = False
        for netname, ip, spec in self._peers(cid):
            names = {n.lower() for n in spec.get("DNSNames", [])}
            if name in names or any(name == f"{n}.{netname.lower()}" for n in names):
                known = True
                if ip not in ips:
                    ips.append(ip)
        return known, ips

    def published(self, proto: str, host_ip: str, host_port: int) -> tuple[str, int] | None:
        """The container address and port a published host address:port leads to."""
        for port_spec, ip, spec in published_endpoints(self.conn, proto, host_ip, host_port):
            if json.loads(spec).get("Gateway"):
                return ip, int(json.loads(port_spec)["port"])
        return None

    def reverse(self, cid: str, ip: str) -> str | None:
        for netname, eip, spec in self._peers(cid):
            if eip == ip and spec.get("DNSNames"):
                return f"{spec['DNSNames'][0]}.{netname}"
        return None


class Daemon:
    def __init__(self, run: Path, db: Path, idle: float) -> None:
        self.run, self.idle = run, idle
        self.names = Names(db)
        self.sel = selectors.DefaultSelector()
        self.held: dict[str, list[socket.socket]] = {}
        self.upstreams: dict[str, list[str]] = {}
        self.flows: dict[tuple[int, tuple], list] = {}  # (proxy fd, client address) -> [socket, last use]
        self.idle_since = time.monotonic()

    # control ---------------------------------------------------------------------------------------
    def _control(self, conn: socket.socket) -> None:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(conn, 65536, MAX_FDS)
        except OSError:
            msg, fds = b"", []
        if not msg:
            self.sel.unregister(conn)
            conn.close()
            for fd in fds:
                os.close(fd)
            return
        req = json.loads(msg)
        op, cid = req.get("op"), req.get("cid", "")
        if op == "add":  # additive: connect/restore hand over more sockets for the same container
            socks = [socket.socket(fileno=fd) for fd in fds]
            self.held.setdefault(cid, []).extend(socks)
            if "upstreams" in req:
                self.upstreams[cid] = req["upstreams"]
            for s, kind in zip(socks, req.get("kinds", []), strict=False):
                if kind in ("dns-udp", "dns-tcp", "proxy"):
                    s.setblocking(False)
                    self.sel.register(s, selectors.EVENT_READ, (kind, cid))
        elif op == "del":
            self._drop(cid)
        elif op == "stop":
            conn.send(b'{"ok":true}')
            raise SystemExit(0)
        reply = {"ok": True, "containers": len(self.held), "pid": os.getpid()}
        if op == "list":
            reply["held"] = {k: len(v) for k, v in self.held.items()}
            reply["upstreams"] = self.upstreams
        conn.send(json.dumps(reply).encode())
        if not self.held:
            self.idle_since = time.monotonic()

    def _drop(self, cid: str) -> None:
        for s in self.held.pop(cid, []):
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        self.upstreams.pop(cid, None)

    # dns -------------------------------------------------------------------------------------------
    def answer(self, cid: str, data: bytes, reply) -> None:
        q = dnsproto.parse(data)
        if q is None:
            return
        ups = self.upstreams.get(cid, [])
        try:
            if q.qclass == 1 and q.qtype in (dnsproto.A, dnsproto.AAAA):
                known, ips = self.names.lookup(cid, q.name)
                if known:
                    version = 4 if q.qtype == dnsproto.A else 6
                    reply(dnsproto.response(q, addrs=[a for a in ips if (":" in a) == (version == 6)],
                                            recursion=bool(ups)))
                    return
            if q.qclass == 1 and q.qtype == dnsproto.PTR:
                ip = dnsproto.reverse_name(q.name)
                target = self.names.reverse(cid, ip) if ip else None
                if target:
                    reply(dnsproto.response(q, ptr=target, recursion=bool(ups)))
                    return
        except sqlite3.Error:
            reply(dnsproto.response(q, rcode=dnsproto.SERVFAIL))
            return
        if not ups:
            reply(dnsproto.response(q, rcode=dnsproto.SERVFAIL))
            return
        threading.Thread(target=self._forward, args=(q, data, ups, reply), daemon=True).start()

    @staticmethod
    def _forward(q: dnsproto.Query, data: bytes, ups: list[str], reply) -> None:
        """Relay to the container's upstream servers from the host namespace (as Docker does)."""
        for server in ups:
            try:
                with socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(2)
                    s.sendto(data, (server, 53))
                    resp, _ = s.recvfrom(65535)
                    reply(resp)
                    return
            except OSError:
                continue
        reply(dnsproto.response(q, rcode=dnsproto.SERVFAIL))

    # IPv6 proxy --------------------------------------------------------------------------------------
    def _target(self, s: socket.socket, proto: str) -> tuple[str, int] | None:
        host_ip, host_port = s.getsockname()[:2]
        try:
            return self.names.published(proto, host_ip, host_port)
        except sqlite3.Error:
            return None

    def _proxied(self, s: socket.socket) -> None:
        if s.type == socket.SOCK_DGRAM:
            self._proxied_udp(s)
            return
        try:
            conn, _ = s.accept()
        except OSError:
            return
        conn.setblocking(True)
        target = self._target(s, "tcp")
        if target is None:
            conn.close()
            return
        threading.Thread(target=_relay, args=(conn, target), daemon=True).start()

    def _proxied_udp(self, s: socket.socket) -> None:
        try:
            data, client = s.recvfrom(65535)
        except OSError:
            return
        flow = self.flows.get((s.fileno(), client))
        if flow is None:
            target = self._target(s, "udp")
            if target is None:
                return
            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            up.setblocking(False)
            try:
                up.connect(target)
            except OSError:
                up.close()
                return
            flow = self.flows[(s.fileno(), client)] = [up, 0.0]
            self.sel.register(up, selectors.EVENT_READ, ("proxy-reply", (s, client)))
        flow[1] = time.monotonic()
        try:
            flow[0].send(data)
        except OSError:
            pass

    def _proxied_reply(self, up: socket.socket, back: tuple[socket.socket, tuple]) -> None:
        s, client = back
        try:
            data = up.recv(65535)
            s.sendto(data, client)
        except OSError:
            return
        flow = self.flows.get((s.fileno(), client))
        if flow:
            flow[1] = time.monotonic()

    def _expire_flows(self) -> None:
        """UDP flows unused for UDP_FLOW_IDLE, or whose published port went (the container left)."""
        now = time.monotonic()
        for key, (up, last) in list(self.flows.items()):
            if now - last > UDP_FLOW_IDLE or key[0] not in self.sel.get_map():
                self.sel.unregister(up)
                up.close()
                del self.flows[key]

    def _udp(self, s: socket.socket, cid: str) -> None:
        try:
            data, addr = s.recvfrom(4096)
        except OSError:
            return
        self.answer(cid, data, lambda resp: s.sendto(resp[:512] if len(resp) > 512 else resp, addr))

    def _tcp(self, s: socket.socket, cid: str) -> None:
        try:
            conn, _ = s.accept()
        except OSError:
            return
        conn.settimeout(2)
        try:
            head = conn.recv(2, socket.MSG_WAITALL)
            (n,) = struct.unpack("!H", head)
            data = conn.recv(n, socket.MSG_WAITALL)
        except (OSError, struct.error):
            conn.close()
            return

        def reply(resp: bytes) -> None:
            try:
                conn.sendall(struct.pack("!H", len(resp)) + resp)
            except OSError:
                pass
            conn.close()
        self.answer(cid, data, reply)

    # loop ------------------------------------------------------------------------------------------
    def serve(self) -> None:
        sock_path, pid_path, lock_path = self.run / "netd.sock", self.run / "netd.pid", self.run / "netd.lock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock_path.unlink()
        except FileNotFoundError:
            pass
        listener.bind(str(sock_path))
        os.chmod(sock_path, 0o600)
        listener.listen(64)
        pid_path.write_text(str(os.getpid()))
        self.sel.register(listener, selectors.EVENT_READ, ("listen", ""))
        try:
            while True:
                for key, _ in self.sel.select(timeout=1.0):
                    kind, cid = key.data
                    if kind == "listen":
                        conn, _ = listener.accept()
                        self.sel.register(conn, selectors.EVENT_READ, ("control", ""))
                    elif kind == "control":
                        self._control(key.fileobj)
                    elif kind == "dns-udp":
                        self._udp(key.fileobj, cid)
                    elif kind == "dns-tcp":
                        self._tcp(key.fileobj, cid)
                    elif kind == "proxy":
                        self._proxied(key.fileobj)
                    elif kind == "proxy-reply":
                        self._proxied_reply(key.fileobj, cid)
                if self.flows:
                    self._expire_flows()
                if not self.held and time.monotonic() - self.idle_since > self.idle:
                    # Exit only while no client holds the lock (a client holds it from connect to reply).
                    with _flock(lock_path, blocking=False) as got:
                        if got and not self.held and len(self.sel.get_map()) == 1:
                            sock_path.unlink(missing_ok=True)
                            pid_path.unlink(missing_ok=True)
                            return
        finally:
            listener.close()


def _relay(client: socket.socket, target: tuple[str, int]) -> None:
    """One proxied connection: client <-> target until both sides closed (half-closes passed on)."""
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    t = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    t.start()
    _pump(client, upstream)
    t.join()
    client.close()
    upstream.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


# client ---------------------------------------------------------------------------------------------
class Client:
    """The engine's side: spawn netd on demand and hand it sockets to hold."""

    def __init__(self, run: Path, db: Path, idle: float | None = None) -> None:
        self.run, self.db = Path(run), Path(db)
        self.idle = idle if idle is not None else float(os.environ.get("NANOVISOR_NETD_IDLE", "10"))

    @property
    def pid(self) -> int | None:
        try:
            pid = int((self.run / "netd.pid").read_text())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None

    def _spawn(self) -> None:
        import subprocess
        log = open(self.run / "netd.log", "ab")
        src = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
        # setsid -f: the daemon is nobody's child (no zombie in the engine) and leaves our session.
        subprocess.run(["setsid", "-f", sys.executable, "-m", "nanovisor.network.netd", "--run", str(self.run),
                        "--db", str(self.db), "--idle", str(self.idle)], stdin=subprocess.DEVNULL, stdout=log,
                       stderr=log, close_fds=True, env=env, cwd="/", check=True)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (self.run / "netd.sock").exists() and self.pid:
                return
            time.sleep(0.01)
        raise OSError("netd did not start; see " + str(self.run / "netd.log"))

    def request(self, req: dict, fds: list[int] = (), spawn: bool = True) -> dict | None:
        self.run.mkdir(parents=True, exist_ok=True)
        with _flock(self.run / "netd.lock"):
            for attempt in range(2):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                try:
                    s.connect(str(self.run / "netd.sock"))
                except (FileNotFoundError, ConnectionRefusedError):
                    s.close()
                    if not spawn or attempt:
                        return None
                    self._spawn()
                    continue
                with s:
                    socket.send_fds(s, [json.dumps(req).encode()], list(fds))
                    data = s.recv(65536)
                    return json.loads(data) if data else None
        return None

    def hold(self, cid: str, socks: list[tuple[str, socket.socket]], upstreams: list[str]) -> None:
        self.request({"op": "add", "cid": cid, "kinds": [k for k, _ in socks], "upstreams": upstreams},
                     [s.fileno() for _, s in socks])

    def release(self, cid: str) -> None:
        self.request({"op": "del", "cid": cid}, spawn=False)

    def stop(self) -> None:
        pid = self.pid
        self.request({"op": "stop"}, spawn=False)
        deadline = time.monotonic() + 5
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
        for name in ("netd.sock", "netd.pid"):
            (self.run / name).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="nanovisor-netd")
    ap.add_argument("--run", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--idle", type=float, default=10)
    args = ap.parse_args(argv)
    Daemon(Path(args.run), Path(args.db), args.idle).serve()


if __name__ == "__main__":
    main()
