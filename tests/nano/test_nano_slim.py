"""`nanovisor nano slim`: a small http.server app built (with the real docker CLI) FROM a fat Debian-style
python image is slimmed by watching it serve; the slim image serves the same, the original is untouched,
and runs that cannot be observed are refused."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from nanohelpers import nano
from nvtest import wait_for

APP = '''import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"hello": "nano", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
'''


def _images(docker) -> dict[str, str]:
    out = docker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.split("\n")
    return dict(line.split() for line in out if line.strip())


@pytest.fixture(scope="module")
def web_app(docker, built, tmp_path_factory):
    """app/web: python3 + coreutils + dash with every file kept (docs, locales, dpkg), plus the app."""
    built("fat/python", "--package", "python3", "--package", "coreutils", "--package", "dash",
          "--package", "dpkg", "--keep", "*")
    ctx = tmp_path_factory.mktemp("webapp")
    (ctx / "app.py").write_text(APP)
    (ctx / "Dockerfile").write_text('FROM fat/python\nCOPY app.py /app/app.py\nEXPOSE 8080\nENTRYPOINT []\n'
                                    'CMD ["python3", "/app/app.py"]\n')
    r = docker("build", "-q", "-t", "app/web", str(ctx))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="module")
def slimmed(nano_root, web_app, tmp_path_factory) -> dict:
    report = tmp_path_factory.mktemp("slim") / "report.json"
    r = nano(nano_root, "slim", "app/web", "--http-probe", "8080", "--probe", "python3 -c 'import json'",
             "-t", "app/web-slim", "--report", str(report))
    assert r.returncode == 0, r.stderr
    return json.loads(report.read_text())


def _serves(docker, image: str, isolation: str = "") -> dict:
    name = f"web-{uuid.uuid4().hex[:6]}"
    r = docker("run", "-d", *([f"--isolation={isolation}"] if isolation else []), "--name", name, image)
    assert r.returncode == 0, r.stderr
    try:
        ip = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name).stdout
        got: list[bytes] = []

        def answered() -> bool:
            try:
                got.append(urllib.request.urlopen(f"http://{ip.strip()}:8080/x", timeout=2).read())
                return True
            except OSError:
                return False

        wait_for(answered, timeout=120)
        return json.loads(got[-1])
    finally:
        docker("rm", "-f", name)


def test_slim_image_serves_like_the_original(docker, web_app, slimmed):
    assert _serves(docker, "app/web-slim") == {"hello": "nano", "path": "/x"}
    assert slimmed["verified"]["http_probes"] == [{"port": 8080, "status": 200}]
    assert slimmed["verified"]["probes"][0]["exit_code"] == 0


def test_report_and_sizes(docker, web_app, slimmed):
    sizes = {i["RepoTags"][0]: i["Size"] for i in json.loads(docker("image", "inspect", "app/web",
                                                                    "app/web-slim").stdout)}
    assert sizes["app/web-slim:latest"] * 3 < sizes["app/web:latest"]
    assert slimmed["size"] == {"original": sizes["app/web:latest"], "slim": sizes["app/web-slim:latest"]}
    assert slimmed["kept"]["bytes"] < slimmed["removed"]["bytes"]
    files = set(slimmed["files"])
    assert {"app/app.py", "usr/bin/python3.11", "usr/lib/x86_64-linux-gnu/libc.so.6", "etc/passwd"} <= files
    assert "usr/bin/dpkg" not in files and not any(f.startswith("usr/share/doc/") for f in files)
    cfg = json.loads(docker("image", "inspect", "app/web-slim").stdout)[0]["Config"]
    assert cfg["Cmd"] == ["python3", "/app/app.py"] and "8080/tcp" in cfg["ExposedPorts"]
    assert cfg["Labels"]["org.nanovisor.nano.slim.from"] == web_app


def test_original_is_untouched(docker, web_app, slimmed):
    assert _images(docker)["app/web:latest"] == web_app
    assert slimmed["original"] == web_app
    assert _serves(docker, "app/web") == {"hello": "nano", "path": "/x"}


def test_refuses_a_command_that_exits_before_the_probes(nano_root, python_id):
    # nano/python's entrypoint with no input: the interpreter exits at once
    r = nano(nano_root, "slim", "nano/python", "--probe", "python3 -c 1", "-t", "refused/early")
    assert r.returncode == 1
    assert "exited (code 0) before the probes ran" in r.stderr


def test_refuses_a_failing_probe_and_writes_nothing(docker, nano_root, web_app):
    before = _images(docker)
    r = nano(nano_root, "slim", "app/web", "--probe", "python3 -c 'import no_such_module'", "-t", "refused/fail")
    assert r.returncode == 1
    assert "failed (exit code 1)" in r.stderr and "No module named" in r.stderr
    assert _images(docker) == before


def test_refuses_to_overwrite_the_original_tag(nano_root, web_app):
    r = nano(nano_root, "slim", "app/web", "--http-probe", "8080", "-t", "app/web")
    assert r.returncode == 1 and "names the original image" in r.stderr


@pytest.mark.vm
def test_slim_image_serves_in_vm_isolation(docker, slimmed):
    assert _serves(docker, "app/web-slim", isolation="vm") == {"hello": "nano", "path": "/x"}
