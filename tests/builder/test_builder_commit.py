"""`nanovisor commit` of a running container: its changes (new files, deletions) become a layer, --change
and the container's own config shape the new image."""

from __future__ import annotations

import json
import time

from buildhelpers import nvb
from nvtest import IMAGE


def test_commit_running_container(root):
    cid = nvb(root, "run", "-d", "--name", "to-commit", IMAGE, "sh", "-c",
              "echo data > /data.txt; rm /bin/ls; mkdir -p /etc/newdir; touch /ready; sleep 1000").stdout.strip()
    try:
        for _ in range(100):
            if nvb(root, "exec", "to-commit", "test", "-e", "/ready").returncode == 0:
                break
            time.sleep(0.1)
        r = nvb(root, "commit", "-m", "snapshot", "-a", "tester", "-c", "ENV COMMITTED=yes",
                "-c", 'CMD ["cat", "/data.txt"]', "to-commit", "buildtest/committed:1")
        assert r.returncode == 0, r.stderr
        image_id = r.stdout.strip()
        assert image_id.startswith("sha256:") and len(image_id) == 71
        assert nvb(root, "inspect", "-f", "{{.State.Status}}", "to-commit").stdout.strip() == "running"
    finally:
        nvb(root, "rm", "-f", cid)
    assert nvb(root, "run", "--rm", "buildtest/committed:1").stdout == "data\n"
    out = nvb(root, "run", "--rm", "buildtest/committed:1", "sh", "-c",
              'echo $COMMITTED; test -e /bin/ls && echo has-ls || echo no-ls; test -d /etc/newdir && echo dir; '
              'cat /etc/hosts >/dev/null && echo hosts').stdout.split()
    assert out == ["yes", "no-ls", "dir", "hosts"]
    info = json.loads(nvb(root, "image", "inspect", "buildtest/committed:1").stdout)[0]
    assert info["Comment"] == "snapshot" and info["Author"] == "tester"
    assert len(info["RootFS"]["Layers"]) == 2
    hist = nvb(root, "history", "--no-trunc", "buildtest/committed:1").stdout
    assert "snapshot" in hist


def test_commit_without_changes_adds_no_layer(root):
    nvb(root, "create", "--name", "unchanged", IMAGE, "true")
    try:
        r = nvb(root, "commit", "unchanged")
        assert r.returncode == 0, r.stderr
        info = json.loads(nvb(root, "image", "inspect", r.stdout.strip()).stdout)[0]
        assert len(info["RootFS"]["Layers"]) == 1
    finally:
        nvb(root, "rm", "-f", "unchanged")
    bad = nvb(root, "commit", "no-such-container-x")
    assert bad.returncode == 1 and "No such container: no-such-container-x" in bad.stderr
