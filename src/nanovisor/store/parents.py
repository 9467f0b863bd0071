"""Which image an image was made from, as dockerd's image store records it: `docker commit` and every step of
a legacy build set it, `image inspect` shows it as Parent, `docker history` walks it to show step ids.

Kept in the engine's key-value table ("parent:<id>" → parent id): no schema of its own. An image pulled or
loaded has none, as in dockerd."""

from __future__ import annotations

_PREFIX = "parent:"


def set_parent(db, image_id: str, parent_id: str) -> None:
    if parent_id and parent_id != image_id:
        db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (_PREFIX + image_id, parent_id))


def parent_of(db, image_id: str) -> str:
    """The parent's id, or "" (none recorded, or the parent was deleted since)."""
    row = db.query_one("SELECT value FROM kv WHERE key=?", (_PREFIX + image_id,))
    if row is None:
        return ""
    exists = db.query_one("SELECT 1 FROM images WHERE id=?", (row["value"],))
    return row["value"] if exists is not None else ""


def ancestry(db, image_id: str, limit: int = 10_000) -> list[str]:
    """image_id, its parent, that one's parent, ... (as far as they are recorded and still exist)."""
    out = [image_id]
    while len(out) < limit:
        parent = parent_of(db, out[-1])
        if not parent or parent in out:
            break
        out.append(parent)
    return out


def children_of(db, image_id: str) -> list[str]:
    """The existing images made from image_id (dockerd refuses to delete an image that has any)."""
    rows = db.query("SELECT images.id FROM kv JOIN images ON images.id = substr(kv.key, ?) "
                    "WHERE kv.key >= ? AND kv.key < ? AND kv.value = ?",
                    (len(_PREFIX) + 1, _PREFIX, _PREFIX[:-1] + ";", image_id))
    return [r["id"] for r in rows]


def all_parents(db) -> set[str]:
    """Every image some existing image records as its parent (`docker images` hides these when untagged)."""
    rows = db.query("SELECT kv.value FROM kv JOIN images ON images.id = substr(kv.key, ?) "
                    "WHERE kv.key >= ? AND kv.key < ?", (len(_PREFIX) + 1, _PREFIX, _PREFIX[:-1] + ";"))
    return {r["value"] for r in rows}
