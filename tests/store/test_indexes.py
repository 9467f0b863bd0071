"""Every per-request container query is answered by an index: no statement the container table module
issues for ps (live only, by label, ancestor, id prefix), inspect (id, name, prefix) or create (name check)
scans the table, so their cost does not grow with the number of containers."""

from __future__ import annotations

import sqlite3

import pytest

from nanovisor.store.containers import ContainerRow, ContainerTable
from nanovisor.store.db import Database

QUERIES = {
    "ps": lambda t: t.select(statuses=["running", "paused", "restarting"]),
    "ps --filter label=k=v": lambda t: t.select(labels=[("k", "v")]),
    "ps --filter label=k": lambda t: t.select(labels=[("k", None)]),
    "ps --filter ancestor": lambda t: t.select(image_ids=["sha256:aa"]),
    "ps --filter id": lambda t: t.select(id_prefixes=["ab", "cd"]),
    "inspect by id or name": lambda t: t.by_id_or_name("abc", "abc"),
    "inspect by id prefix": lambda t: t.by_id_prefix("ab"),
    "create: name in use": lambda t: t.id_named("n"),
    "rmi: containers of an image": lambda t: t.using_image("sha256:aa"),
}


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_query_uses_an_index(tmp_path, query):
    db = Database(tmp_path / "nanovisor.db")
    table = ContainerTable(db)
    for i in range(50):
        status = "running" if i % 10 == 0 else "exited"
        table.insert(ContainerRow(f"{i:02x}" * 32, f"c{i}", f"sha256:{i % 5}", float(i),
                                  {"Config": {"Labels": {"k": "v", "i": str(i)}}}, {"Status": status}), status)
    seen: list[str] = []
    db._conn().set_trace_callback(seen.append)
    QUERIES[query](table)
    db._conn().set_trace_callback(None)
    statements = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert statements
    for sql in statements:
        plan = [row[3] for row in db._conn().execute("EXPLAIN QUERY PLAN " + sql)]
        scans = [step for step in plan if step.startswith("SCAN")]
        assert not scans, f"{sql}\n{plan}"


def test_trace_gives_bound_values():
    """The check above relies on the trace showing statements with their values in place."""
    conn = sqlite3.connect(":memory:")
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    conn.execute("SELECT ?", ("x",))
    assert seen == ["SELECT 'x'"]
