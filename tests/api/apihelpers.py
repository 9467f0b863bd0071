"""Raw HTTP over the API unix socket, for checks below the client libraries (headers, statuses)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

STARTUP_DEADLINE = 60.0


class UnixHTTPConnection(http.client.HTTPConnection):
    """Raw HTTP over the API socket, for checks below the client libraries (headers, statuses)."""

    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def api_request(sock: str, method: str, path: str, body=None, headers=None):
    """(status, headers, parsed JSON or raw bytes) for one request."""
    conn = UnixHTTPConnection(sock)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        if (resp.getheader("Content-Type") or "").startswith("application/json") and data:
            try:
                return resp.status, resp.headers, json.loads(data)
            except ValueError:
                pass
        return resp.status, resp.headers, data
    finally:
        conn.close()


# The Engine API spec lives in shared/ beside the checkout (CI lays a copy there); /work/shared on a developer's.
_SPEC_NAME = "specs/docker-engine-api-v1.56.yaml"
SPEC_PATH = next((str(p) for p in (Path(__file__).resolve().parents[3] / "shared" / _SPEC_NAME,
                                   Path("/work/shared") / _SPEC_NAME) if p.exists()),
                 str(Path("/work/shared") / _SPEC_NAME))
_spec_cache: dict = {}


# Fields moby declares as Go pointers (*int64, *bool): a nil one is encoded as null though the spec does not
# say x-nullable (e.g. HostConfig.MemorySwappiness of a container created without --memory-swappiness).
GO_POINTER_FIELDS = {"MemorySwappiness", "OomKillDisable", "PidsLimit", "Init"}


def _nullable(schema):
    """Swagger 2.0's x-nullable becomes JSON Schema's type [T, "null"]; so do arrays and objects, because
    moby (Go) encodes nil slices and maps as null and every client copes with that, and Go pointer fields."""
    if isinstance(schema, dict):
        out = {k: _nullable(v) for k, v in schema.items()}
        t = out.get("type")
        if isinstance(t, str) and (out.get("x-nullable") or t in ("array", "object")):
            out["type"] = [t, "null"]
        for name in GO_POINTER_FIELDS & set(out.get("properties") or {}):
            prop = out["properties"][name]
            if isinstance(prop.get("type"), str):
                prop["type"] = [prop["type"], "null"]
        return out
    if isinstance(schema, list):
        return [_nullable(v) for v in schema]
    return schema


def response_validator(path: str, method: str = "get", status: int = 200):
    """A jsonschema validator for one documented response of the Engine API spec."""
    import jsonschema
    import yaml

    spec_file = os.environ.get("NANOVISOR_API_SPEC", SPEC_PATH)
    if spec_file not in _spec_cache:
        with open(spec_file) as f:
            _spec_cache[spec_file] = _nullable(yaml.safe_load(f))
    spec = _spec_cache[spec_file]
    schema = spec["paths"][path][method]["responses"][status]["schema"]
    return jsonschema.Draft4Validator({**schema, "definitions": spec["definitions"]})



def docker_cli_env(sock: str, config_dir: Path) -> dict:
    """Environment for the real docker CLI talking to a server on sock (own config dir, no hints)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(config_dir), DOCKER_CLI_HINTS="false")
    return env


def docker_cli(env: dict, timeout: float = 120):
    """docker(*args, input=None, timeout=...) -> CompletedProcess (text) of the real docker CLI in env."""

    def run(*args: str, input: str | None = None, timeout: float = timeout) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=env, input=input, capture_output=True, text=True,
                              timeout=timeout)

    return run

class ServeProcess:
    """One `python -m nanovisor --root ROOT serve --host ...` child."""

    def __init__(self, root: Path, hosts: list[str], log_path: Path, extra: list[str] = (),
                 env: dict | None = None, prefix: list[str] = ()) -> None:
        """prefix: a command the server runs under (e.g. `unshare --net ...`)."""
        self.log_path = log_path
        self.log = open(log_path, "wb")
        cmd = [*prefix, sys.executable, "-m", "nanovisor", "--root", str(root), "serve", *extra]
        for h in hosts:
            cmd += ["--host", h]
        # Tests never reach off the machine: no outbound masquerading, no DNS forwarding upstream.
        env = {**os.environ, **(env or {}), "NANOVISOR_NET_OUTBOUND": "0", "NANOVISOR_DNS_FORWARD": "0"}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, sock: str | None = None, tcp: tuple[str, int] | None = None) -> None:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if sock:
                    conn = UnixHTTPConnection(sock, timeout=5)
                else:
                    conn = http.client.HTTPConnection(*tcp, timeout=5)
                conn.request("GET", "/_ping")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serve did not answer /_ping:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def free_port() -> int:
    """A loopback TCP port nothing listens on (for a server to bind, or a registry that refuses)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
