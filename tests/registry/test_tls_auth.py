"""TLS with a CA from certs.d, htpasswd (Basic) and token (Bearer) auth, login/logout and config.json."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
from registryhelpers import USERS

from nanovisor.images.registry import Unauthorized, credentials, login, logout, pull, push
from nanovisor.images.registry.transport import TransportError

USER, PASSWORD = next(iter(USERS.items()))
ALICE = {"username": USER, "password": PASSWORD}


@pytest.fixture
def certs_dir(tmp_path):
    return tmp_path / "certs.d"


def test_tls_registry_needs_its_ca_unless_insecure(tls_registry, source, fresh_store, certs_dir):
    ref = f"{tls_registry.host}/tls/busybox:1"
    source.tag("nano/busybox", ref)
    with pytest.raises(TransportError) as e:  # verified TLS (not listed as insecure), CA unknown
        push(source, ref, insecure_registries=[], certs_dir=certs_dir)
    assert "certificate verify failed" in str(e.value) or "failed to verify certificate" in str(e.value)

    (certs_dir / tls_registry.host).mkdir(parents=True)
    shutil.copy(tls_registry.ca, certs_dir / tls_registry.host / "ca.crt")
    digest = push(source, ref, insecure_registries=[], certs_dir=certs_dir)
    img = pull(fresh_store, ref, insecure_registries=[], certs_dir=certs_dir)
    assert img.id == source.resolve("nano/busybox").id
    assert img.repo_digests == [f"{tls_registry.host}/tls/busybox@{digest}"]


def test_loopback_is_insecure_by_default(tls_registry, source, fresh_store, tmp_path):
    ref = f"{tls_registry.host}/tls/loopback:1"
    source.tag("nano/busybox", ref)
    push(source, ref, certs_dir=tmp_path)  # 127.0.0.0/8 is insecure: HTTPS without verification
    assert pull(fresh_store, ref, certs_dir=tmp_path).id == source.resolve("nano/busybox").id


def test_plain_http_only_for_insecure_registries(plain_registry, fresh_store, tmp_path):
    with pytest.raises(TransportError):
        pull(fresh_store, f"{plain_registry.host}/any/thing:1", insecure_registries=[], certs_dir=tmp_path)


# -- htpasswd -----------------------------------------------------------------------------------------


def test_htpasswd_registry_refuses_anonymous_and_wrong_password(htpasswd_registry, source, fresh_store):
    ref = f"{htpasswd_registry.host}/private/busybox:1"
    source.tag("nano/busybox", ref)
    with pytest.raises(Unauthorized) as e:
        pull(fresh_store, ref)
    assert "no basic auth credentials" in str(e.value)
    with pytest.raises(Unauthorized):
        push(source, ref, auth={"username": USER, "password": "wrong"})
    with pytest.raises(Unauthorized) as e:
        login(htpasswd_registry.host, USER, "wrong", save=False)
    assert str(e.value) == f"login attempt to http://{htpasswd_registry.host}/v2/ failed with status: " \
                           "401 Unauthorized"


def test_login_stores_credentials_like_docker_and_they_work(htpasswd_registry, source, fresh_store, tmp_path):
    config = tmp_path / "docker" / "config.json"
    assert login(htpasswd_registry.host, USER, PASSWORD, config=config) == \
        {"Status": "Login Succeeded", "IdentityToken": ""}
    stored = json.loads(config.read_text())["auths"][htpasswd_registry.host]
    assert base64.b64decode(stored["auth"]).decode() == f"{USER}:{PASSWORD}"
    assert oct(config.stat().st_mode & 0o777) == "0o600"

    auth = credentials.lookup(htpasswd_registry.host, config)
    ref = f"{htpasswd_registry.host}/private/busybox:2"
    source.tag("nano/busybox", ref)
    digest = push(source, ref, auth=auth)
    img = pull(fresh_store, ref, auth=auth)
    assert img.repo_digests == [f"{htpasswd_registry.host}/private/busybox@{digest}"]

    assert logout(htpasswd_registry.host, config) == f"Removing login credentials for {htpasswd_registry.host}"
    assert credentials.lookup(htpasswd_registry.host, config) is None
    assert logout(htpasswd_registry.host, config) == f"Not logged in to {htpasswd_registry.host}"


# -- bearer tokens --------------------------------------------------------------------------------------


def test_token_auth_anonymous_pull_and_authenticated_push(token_registry, token_server, source, fresh_store):
    ref = f"{token_registry.host}/team/busybox:1"
    source.tag("nano/busybox", ref)
    with pytest.raises(Unauthorized):  # anonymous tokens carry pull only
        push(source, ref)
    digest = push(source, ref, auth=ALICE)
    assert any(r["user"] == USER and "repository:team/busybox:pull,push" in r["scope"]
               for r in token_server.requests)

    img = pull(fresh_store, ref)  # anonymous
    assert img.id == source.resolve("nano/busybox").id
    assert img.repo_digests == [f"{token_registry.host}/team/busybox@{digest}"]


def test_token_auth_mount_asks_for_the_source_scope(token_registry, token_server, source):
    first = f"{token_registry.host}/team/base:1"
    source.tag("nano/busybox", first)
    push(source, first, auth=ALICE)
    second = f"{token_registry.host}/other/app:1"
    source.tag("nano/busybox", second)
    msgs: list[dict] = []
    push(source, second, auth=ALICE, progress=msgs.append)
    assert any(m.get("status", "").startswith("Mounted from ") for m in msgs)
    assert any("repository:team/base:pull" in r["scope"] or "repository:team/busybox:pull" in r["scope"]
               for r in token_server.requests if r["user"] == USER)


def test_token_login(token_registry):
    assert login(token_registry.host, USER, PASSWORD, save=False)["Status"] == "Login Succeeded"
    with pytest.raises(Unauthorized) as e:
        login(token_registry.host, USER, "nope", save=False)
    assert "incorrect username or password" in str(e.value)
