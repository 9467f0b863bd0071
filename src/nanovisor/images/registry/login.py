"""`docker login` / `logout` and POST /auth: credentials are checked against the registry's /v2/ (through
the same challenge flow pulls use) before anything is stored."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nanovisor.images.registry import credentials
from nanovisor.images.registry.credentials import AuthConfig
from nanovisor.images.registry.hosts import DOCKER_HUB, INDEX_SERVER, normalize_name
from nanovisor.images.registry.transport import for_registry


def login(registry: str | None, username: str, password: str, *, save: bool = True,
          config: Path | None = None, insecure_registries: Sequence[str] | None = None,
          certs_dir: Path | None = None) -> dict:
    """Verifies the credentials; with save, stores them in config.json "auths". Returns POST /auth's body:
    {"Status": "Login Succeeded", "IdentityToken": ""}. Raises Unauthorized with moby's text
    ("login attempt to http://host/v2/ failed with status: 401 Unauthorized")."""
    name = normalize_name(registry or INDEX_SERVER)
    auth = AuthConfig(username=username, password=password, serveraddress=registry or INDEX_SERVER)
    client = for_registry(name, auth, [], insecure_registries, certs_dir)
    try:
        client.check_login()
    finally:
        client.close()
    if save:
        credentials.save(name, auth, config)
    return {"Status": "Login Succeeded", "IdentityToken": ""}


def logout(registry: str | None, config: Path | None = None) -> str:
    """Forgets stored credentials; returns the line `docker logout` prints."""
    name = normalize_name(registry or INDEX_SERVER)
    shown = INDEX_SERVER if name == DOCKER_HUB else name
    if credentials.erase(name, config):
        return f"Removing login credentials for {shown}"
    return f"Not logged in to {shown}"
