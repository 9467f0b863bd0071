"""Engine metadata in SQLite (WAL): every state change is one transaction, safe across processes.

The only package that writes SQL. db.py is the connection (pooled per thread) and runs the migrations of
schema.py (one schema, versioned with PRAGMA user_version) when a root is opened; one table-access module
per concern: containers, execs, images (with layers, leases and registry blobs), volumes, networks, events,
buildcache, kv. Callers get typed rows back, never SQL.
"""

from nanovisor.store.db import Database

__all__ = ["Database"]
