"""Published host ports: bound at once after a host server's traffic on the port (TIME-WAIT does not
block, as with dockerd), and free again after every way a container can end (issue 10)."""

from __future__ import annotations

import errno
import http.server
import os
import signal
import socket
import subprocess
import tempfile
import threading
import urllib.request
from pathlib import Path

import pytest
from apihelpers import ServeProcess, docker_cli, docker_cli_env, free_port
from nvtest import cleanup_root, run_cli, wait_for


def _httpd(page: str) -> list[str]:
    return ["sh", "-c", f"mkdir -p /www && echo {page} > /www/index.html && exec httpd -f -p 80 -h /www"]


def _get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    last: Exception | None = None
    for _ in range(100):
        try:
            with opener.open(url, timeout=5) as resp:
                return resp.read().decode()
        except OSError as e:
            last = e
            threading.Event().wait(0.1)
    raise AssertionError(f"{url} never answered: {last}")


def port_free(port: int, reuse: bool = False) -> bool:
    """Can an ordinary program (no SO_REUSEADDR unless reuse) bind and listen on every address here?"""
    with socket.socket() as s:
        if reuse:  # as most servers do: their own earlier connections in TIME-WAIT do not count
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            s.listen(1)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _time_wait_on(port: int) -> bool:
    out = subprocess.run(["ss", "-Htan", "state", "time-wait", f"( sport = :{port} )"], capture_output=True,
                         text=True).stdout
    return bool(out.strip())


class _Page(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the server closes each connection first: its side lingers in TIME-WAIT

    def do_GET(self) -> None:
        body = b"host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_publish_right_after_a_host_server_served_on_the_port(docker, image, name):
    port = free_port()
    host = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Page)
    t = threading.Thread(target=host.serve_forever, daemon=True)
    t.start()
    try:
        for _ in range(5):
            assert _get(f"http://127.0.0.1:{port}/") == "host\n"
    finally:
        host.shutdown()
        host.server_close()
    assert _time_wait_on(port)  # the situation that blocked publishing for ~60 s
    r = docker("run", "-d", "-p", f"{port}:80", "--name", name, image, *_httpd("container"))
    try:
        assert r.returncode == 0, r.stderr
        assert _get(f"http://127.0.0.1:{port}/") == "container\n"
    finally:
        docker("rm", "-f", name)
    assert port_free(port, reuse=True)  # and the host server can come back (its TIME-WAITs linger)


def test_a_held_port_is_not_taken_by_a_reuseaddr_server(docker, image, name):
    port = free_port()
    assert docker("run", "-d", "-p", f"{port}:80", "--name", name, image, "sleep", "600").returncode == 0
    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError) as e:
                s.bind(("0.0.0.0", port))
                s.listen(1)
            assert e.value.errno == errno.EADDRINUSE
    finally:
        docker("rm", "-f", name)


@pytest.mark.parametrize("how", ["stop", "kill", "die", "die-rm", "rm-f", "bad-command", "second-port-taken"])
def test_port_released_on_every_exit(docker, image, name, how):
    port = free_port()
    publish = ["-p", f"{port}:80"]
    if how in ("bad-command", "second-port-taken"):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        try:
            if how == "second-port-taken":
                extra = ["-p", f"127.0.0.1:{blocker.getsockname()[1]}:81"]
                r = docker("run", "-d", "--name", name, *publish, *extra, image, "sleep", "600")
                assert r.returncode != 0 and "port is already allocated" in r.stderr, r.stderr
            else:
                r = docker("run", "-d", "--name", name, *publish, image, "/no/such/program")
                assert r.returncode != 0 and "no/such/program" in r.stderr, r.stderr
            assert port_free(port)
        finally:
            blocker.close()
            docker("rm", "-f", name)
        return
    cmd = ["sh", "-c", "sleep 1"] if how.startswith("die") else ["sleep", "600"]
    rm = ["--rm"] if how == "die-rm" else []
    r = docker("run", "-d", *rm, "--name", name, *publish, image, *cmd)
    assert r.returncode == 0, r.stderr
    try:
        assert not port_free(port)
        if how == "stop":
            assert docker("stop", "-t", "1", name).returncode == 0
        elif how == "kill":
            assert docker("kill", name).returncode == 0
        elif how == "rm-f":
            assert docker("rm", "-f", name).returncode == 0
        else:
            docker("wait", name)
        wait_for(lambda: port_free(port))
        if how in ("stop", "kill"):  # the same container publishes it again on its next start
            assert docker("start", name).returncode == 0
            assert not port_free(port)
    finally:
        docker("rm", "-f", name)
    wait_for(lambda: port_free(port))


def test_ports_after_serve_is_killed(tmp_path):
    """serve dies by SIGKILL; one container dies while no serve runs, another keeps running. The next
    serve frees the dead one's port and keeps the live one's until it stops."""
    root = Path(tempfile.mkdtemp(prefix="nv-ports-root-"))
    sock = str(tmp_path / "docker.sock")
    docker = docker_cli(docker_cli_env(sock, tmp_path / "cfg"))

    server = None
    try:
        run_cli(root, "nano", "build", "busybox", check=True, timeout=600)
        server = ServeProcess(root, [f"unix://{sock}"], tmp_path / "serve1.log")
        server.wait_ready(sock=sock)
        dies, lives = free_port(), free_port()
        assert docker("run", "-d", "--name", "dies", "-p", f"{dies}:80", "nano/busybox", "sleep", "600"
                      ).returncode == 0
        assert docker("run", "-d", "--name", "lives", "-p", f"{lives}:80", "nano/busybox", "sleep", "600"
                      ).returncode == 0
        pid = int(docker("inspect", "--format", "{{.State.Pid}}", "dies").stdout)
        server.proc.send_signal(signal.SIGKILL)
        server.stop()
        os.kill(pid, signal.SIGKILL)
        server = ServeProcess(root, [f"unix://{sock}"], tmp_path / "serve2.log")
        server.wait_ready(sock=sock)
        wait_for(lambda: port_free(dies))
        assert docker("inspect", "--format", "{{.State.Status}}", "dies").stdout.strip() == "exited"
        assert not port_free(lives)
        assert docker("stop", "-t", "1", "lives").returncode == 0
        wait_for(lambda: port_free(lives))
    finally:
        if server is not None:
            server.stop()
        cleanup_root(root)
