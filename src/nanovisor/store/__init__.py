"""Engine metadata in SQLite (WAL): every state change is one transaction, safe across processes."""

from nanovisor.store.db import Database

__all__ = ["Database"]
