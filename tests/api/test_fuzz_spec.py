"""Schema-driven fuzzing (schemathesis) of a real `nanovisor serve` against the Engine API spec: whatever
a client sends to an operation we serve, the answer is never a server error (5xx).

Bounded: a fixed number of examples per operation and an overall budget, on a root of its own (the fuzzer
creates, prunes and removes freely). Operations that stream until the client hangs up, or reach a registry,
are left out; bind-mount sources are kept inside the test's directory (the engine creates a missing one)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import schemathesis
from apihelpers import SPEC_PATH, ServeProcess, free_port
from hypothesis import HealthCheck, Phase, given, settings
from nvtest import cleanup_root, run_cli


@schemathesis.serializer("application/x-tar")
def _tar_body(ctx, value) -> bytes:
    """Tar bodies (load, archive PUT) go out as generated: arbitrary bytes are hostile archives too."""
    if isinstance(value, bytes):
        return value
    return value.encode(errors="surrogateescape") if isinstance(value, str) else repr(value).encode()


# per operation, and seconds for the whole run (operations past it send nothing more); raise both for a
# deeper run by hand: NANOVISOR_FUZZ_EXAMPLES=200 NANOVISOR_FUZZ_BUDGET=900
EXAMPLES = int(os.environ.get("NANOVISOR_FUZZ_EXAMPLES", "15"))
BUDGET = float(os.environ.get("NANOVISOR_FUZZ_BUDGET", "25"))
SKIP = {
    ("GET", "/events"), ("POST", "/auth"), ("POST", "/containers/{id}/attach"), ("GET", "/containers/{id}/logs"),
    ("GET", "/containers/{id}/stats"), ("POST", "/containers/{id}/wait"), ("GET", "/containers/{id}/export"),
    ("POST", "/exec/{id}/start"), ("POST", "/images/create"), ("GET", "/images/get"),
    ("GET", "/images/{name}/get"), ("POST", "/images/{name}/push"), ("POST", "/build"),
    ("GET", "/images/search"),  # a clear 501: registries speak the v2 API, which has no search
    ("GET", "/containers/{id}/attach/ws"),
}


@pytest.fixture(scope="module")
def fuzz_server():
    root = Path(tempfile.mkdtemp(prefix="nv-fuzz-root-"))
    run_cli(root, "nano", "build", "busybox", check=True, timeout=300)
    port = free_port()
    log = root.parent / f"{root.name}.log"
    server = ServeProcess(root, [f"tcp://127.0.0.1:{port}"], log)
    try:
        server.wait_ready(tcp=("127.0.0.1", port))
        yield f"http://127.0.0.1:{port}", root, server
    finally:
        server.stop()
        cleanup_root(root)
        log.unlink(missing_ok=True)


def _served(method: str, path: str) -> bool:
    from nanovisor.api.router import default_router

    probe = path.replace("{id}", "x").replace("{name}", "x").replace("{execId}", "x")
    try:
        handler, _ = default_router().match(method, probe)
    except Exception:
        return False
    if handler.__module__ == "nanovisor.api.swarm":
        return False  # swarm mode: 503 "This node is not a swarm manager", as a non-swarm dockerd answers
    return (method, path) not in SKIP


def _contain_binds(case, sandbox: Path) -> None:
    """Absolute bind sources moved below sandbox: create makes a missing source directory, as dockerd."""
    body = case.body if isinstance(case.body, dict) else None
    hc = body.get("HostConfig") if body else None
    if isinstance(hc, dict) and isinstance(hc.get("Binds"), list):
        hc["Binds"] = [f"{sandbox}/{b.lstrip('/').replace('..', '_')}" if isinstance(b, str) and b.startswith("/")
                       else b for b in hc["Binds"]]


def test_no_server_error_for_any_generated_request(fuzz_server):
    base_url, root, server = fuzz_server
    schema = schemathesis.openapi.from_path(SPEC_PATH)
    sandbox = Path(tempfile.mkdtemp(prefix="nv-fuzz-binds-"))
    failures: list[str] = []
    statuses: dict[int, int] = {}
    ran = 0
    deadline = time.monotonic() + BUDGET
    try:
        for result in schema.get_all_operations():
            op = result.ok()
            if not _served(op.method.upper(), op.path):
                continue
            ran += 1
            if time.monotonic() > deadline:
                continue

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=op.as_strategy())
            def fuzz(case) -> None:
                if time.monotonic() > deadline:
                    return
                _contain_binds(case, sandbox)
                resp = case.call(base_url=base_url, timeout=30)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                if resp.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} query={case.query} "
                                    f"body={str(case.body)[:300]} -> {resp.status_code} {resp.text[:300]}")

            fuzz()
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
    print(f"fuzzed {ran} operations, {sum(statuses.values())} requests, statuses {sorted(statuses.items())}, "
          f"{BUDGET - (deadline - time.monotonic()):.1f} s")
    assert ran > 30, ran
    assert not failures, "\n".join(failures[:20]) + f"\n... {len(failures)} server errors\n" + server.output()[-3000:]
