"""The Engine facade: the only thing cli/ and api/ call."""

from nanovisor.engine.engine import Engine

__all__ = ["Engine"]
