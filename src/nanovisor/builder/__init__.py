"""Images from containers and Dockerfiles: `docker commit` and the legacy (non-BuildKit) `docker build`."""

from __future__ import annotations


def commit(*args, **kwargs) -> str:
    from nanovisor.builder.commit import commit as _commit

    return _commit(*args, **kwargs)


def build(*args, **kwargs) -> str:
    from nanovisor.builder.builder import build as _build

    return _build(*args, **kwargs)


def build_stream(*args, **kwargs):
    from nanovisor.builder.builder import build_stream as _build_stream

    return _build_stream(*args, **kwargs)
