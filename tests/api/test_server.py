"""The server process itself: several listeners at once, keep-alive, clean stop on SIGTERM."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from apihelpers import ServeProcess, UnixHTTPConnection, free_port


def test_unix_and_tcp_at_once_then_sigterm_cleans_up(nv_root, docker_env):
    tmp = Path(tempfile.mkdtemp(prefix="nv-api2-"))
    sock = tmp / "second.sock"
    port = free_port()
    server = ServeProcess(nv_root, [f"unix://{sock}", f"tcp://127.0.0.1:{port}"], tmp / "serve.log")
    try:
        server.wait_ready(sock=str(sock))
        server.wait_ready(tcp=("127.0.0.1", port))
        env = {**docker_env, "DOCKER_HOST": f"tcp://127.0.0.1:{port}"}
        v = subprocess.run(["docker", "version", "--format", "{{.Server.APIVersion}}"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert v.stdout.strip() == "1.50", v.stderr
        assert sock.is_socket()
        assert oct(sock.stat().st_mode & 0o777) == "0o660"
    finally:
        code = server.stop()
    assert code == 0, server.output()
    assert not sock.exists()
    os.unlink(tmp / "serve.log")
    tmp.rmdir()


def test_keep_alive_serves_several_requests_on_one_connection(api_socket):
    conn = UnixHTTPConnection(api_socket)
    try:
        for path in ("/_ping", "/version", "/v1.44/containers/json", "/nope", "/_ping"):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status in (200, 404)
        assert conn.sock is not None  # never reconnected: http.client drops sock on close
    finally:
        conn.close()
