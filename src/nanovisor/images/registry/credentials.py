"""Registry credentials: the AuthConfig clients send (X-Registry-Auth, POST /auth) and the store `login`
writes, in Docker's ~/.docker/config.json "auths" layout ({"auths": {"host:port": {"auth": b64(user:pass)}}})
so `nanovisor login` and `docker login` share one file."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nanovisor.images.registry.hosts import DOCKER_HUB, INDEX_SERVER, normalize_name


@dataclass
class AuthConfig:
    username: str = ""
    password: str = ""
    identitytoken: str = ""     # an OAuth refresh token a registry gave at login
    registrytoken: str = ""     # a bearer token to use as is
    serveraddress: str = ""

    @classmethod
    def from_dict(cls, d: dict | None) -> AuthConfig | None:
        """Accepts Docker's AuthConfig JSON (any key case) and config.json entries ("auth": b64)."""
        if not d:
            return None
        low = {str(k).lower(): v for k, v in d.items() if isinstance(v, str)}
        user, pw = low.get("username", ""), low.get("password", "")
        if low.get("auth") and not user:
            try:
                user, _, pw = base64.b64decode(low["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, pw = "", ""
        auth = cls(user, pw, low.get("identitytoken", ""), low.get("registrytoken", ""),
                   low.get("serveraddress", ""))
        return auth if auth.has_credentials() or auth.serveraddress else None

    def has_credentials(self) -> bool:
        return bool(self.username or self.password or self.identitytoken or self.registrytoken)


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(base) / "config.json"


def key_for(registry: str) -> str:
    """The "auths" key Docker uses: the v1 index URL for Docker Hub, host[:port] otherwise."""
    name = normalize_name(registry)
    return INDEX_SERVER if name == DOCKER_HUB else name


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        from nanovisor.errors import InvalidParameter

        raise InvalidParameter(f"{path}: not valid JSON") from None
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def lookup(registry: str, path: Path | None = None) -> AuthConfig | None:
    """Stored credentials for a registry (keys compared by host, as Docker's ConvertToHostname)."""
    name = normalize_name(registry)
    auths = _read(path or config_path()).get("auths") or {}
    for key, entry in auths.items():
        if normalize_name(key) == name and isinstance(entry, dict):
            auth = AuthConfig.from_dict(entry)
            if auth is not None:
                auth.serveraddress = key
                return auth
    return None


def save(registry: str, auth: AuthConfig, path: Path | None = None) -> None:
    path = path or config_path()
    data = _read(path)
    auths = data.setdefault("auths", {})
    entry = {"auth": base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()}
    if auth.identitytoken:
        entry = {"auth": base64.b64encode(f"{auth.username}:".encode()).decode(),
                 "identitytoken": auth.identitytoken}
    for key in [k for k in auths if normalize_name(k) == normalize_name(registry)]:
        del auths[key]
    auths[key_for(registry)] = entry
    _write(path, data)


def erase(registry: str, path: Path | None = None) -> bool:
    """Removes stored credentials; False when there were none (`logout` says "Not logged in to X")."""
    path = path or config_path()
    data = _read(path)
    auths = data.get("auths") or {}
    keys = [k for k in auths if normalize_name(k) == normalize_name(registry)]
    for key in keys:
        del auths[key]
    if keys:
        _write(path, data)
    return bool(keys)
