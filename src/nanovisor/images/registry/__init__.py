"""Registry client (Docker Registry HTTP API v2 / OCI distribution): pull, push, login, logout.

Imported only by the commands that need it (never on `nanovisor --version`)."""

from __future__ import annotations

from nanovisor.images.registry.credentials import AuthConfig
from nanovisor.images.registry.errors import RegistryError, Unauthorized, VerificationError
from nanovisor.images.registry.hosts import DEFAULT_CERTS_DIR, DEFAULT_INSECURE
from nanovisor.images.registry.login import login, logout
from nanovisor.images.registry.progress import stream
from nanovisor.images.registry.pull import pull
from nanovisor.images.registry.push import push

__all__ = ["AuthConfig", "DEFAULT_CERTS_DIR", "DEFAULT_INSECURE", "RegistryError", "Unauthorized", "pull_stream", "push_stream",
           "VerificationError", "login", "logout", "pull", "push", "stream"]


def pull_stream(store, ref: str, **kw):
    """pull() as the iterator of progress messages POST /images/create streams (raises at the end on error).
    Keyword arguments are pull()'s (auth, platform, insecure_registries, certs_dir, ...)."""
    return stream(lambda progress, cancel: pull(store, ref, progress=progress, cancel=cancel, **kw))


def push_stream(store, ref: str, **kw):
    """push() as the iterator of progress messages POST /images/{name}/push streams."""
    return stream(lambda progress, cancel: push(store, ref, progress=progress, cancel=cancel, **kw))
