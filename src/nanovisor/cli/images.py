"""Image verbs: images, rmi, tag, save, load, import, history, image inspect/prune."""

from __future__ import annotations

import sys
import time

from nanovisor.cli.containers import parse_filter_flags
from nanovisor.cli.main import engine_for
from nanovisor.cli.output import dump_json, for_each, formatted, table
from nanovisor.errors import InvalidParameter
from nanovisor.units import human_size


def add_images(p):
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    p.add_argument("--digests", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("repository", nargs="?")


def _ago(ts: float) -> str:
    from nanovisor.engine.views import _ago as ago

    return ago(time.time() - ts) + " ago"


def cmd_images(args) -> int:
    engine = engine_for(args)
    filters = parse_filter_flags(args.filter)
    if args.repository:
        filters.setdefault("reference", []).append(args.repository)
    rows = []
    for img in engine.image_list(all=args.all, filters=filters):
        image_id = img["Id"] if args.no_trunc else img["Id"].split(":", 1)[1][:12]
        tags = img.get("RepoTags") or ["<none>:<none>"]
        for tag in tags:
            repo, _, t = tag.rpartition(":")
            rows.append({"ID": image_id, "Repository": repo, "Tag": t, "CreatedSince": _ago(img["Created"]),
                         "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(img["Created"])),
                         "Size": human_size(img.get("Size", 0)), "Digest": "<none>", "Containers": "N/A",
                         "SharedSize": "N/A", "UniqueSize": "N/A", "VirtualSize": human_size(img.get("Size", 0))})
    if args.quiet:
        seen = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        print("\n".join(seen)) if seen else None
        return 0
    if args.format:
        formatted(args.format, rows, {"ID": "IMAGE ID", "CreatedSince": "CREATED"})
        return 0
    table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
          [[r["Repository"], r["Tag"], r["ID"], r["CreatedSince"], r["Size"]] for r in rows])
    return 0


def add_rmi(p):
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--no-prune", action="store_true")
    p.add_argument("images", nargs="+")


def cmd_rmi(args) -> int:
    engine = engine_for(args)

    def remove(ref: str) -> None:
        for item in engine.image_remove(ref, args.force, args.no_prune):
            for k, v in item.items():
                print(f"{k}: {v}")
    return for_each(args.images, remove, echo=False)


def add_tag(p):
    p.add_argument("source")
    p.add_argument("target")


def cmd_tag(args) -> int:
    engine_for(args).images.tag(args.source, args.target)
    return 0


def add_save(p):
    p.add_argument("-o", "--output")
    p.add_argument("images", nargs="+")


def cmd_save(args) -> int:
    engine = engine_for(args)
    if not args.output and sys.stdout.isatty():
        raise InvalidParameter("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    stream = engine.image_save(args.images)
    out = open(args.output, "wb") if args.output else sys.stdout.buffer
    try:
        for chunk in stream:
            out.write(chunk)
    finally:
        if args.output:
            out.close()
    return 0


def add_load(p):
    p.add_argument("-i", "--input")
    p.add_argument("-q", "--quiet", action="store_true")


def cmd_load(args) -> int:
    engine = engine_for(args)
    src = open(args.input, "rb") if args.input else sys.stdin.buffer
    try:
        refs = engine.image_load(src)
    finally:
        if args.input:
            src.close()
    for ref in refs:
        print(f"Loaded image{' ID' if ref.startswith('sha256:') else ''}: {ref}")
    return 0


def add_import(p):
    p.add_argument("-c", "--change", action="append", default=[])
    p.add_argument("-m", "--message", default="")
    p.add_argument("file")
    p.add_argument("reference", nargs="?")


def cmd_import(args) -> int:
    engine = engine_for(args)
    repo, tag = None, None
    if args.reference:
        repo, _, tag = args.reference.rpartition(":") if ":" in args.reference.split("/")[-1] \
            else (args.reference, "", "latest")
    src = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    try:
        print(engine.image_import(src, repo, tag, args.change, args.message))
    finally:
        if args.file != "-":
            src.close()
    return 0


def add_history(p):
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--format")
    p.add_argument("-H", "--human", default="true")
    p.add_argument("image")


def cmd_history(args) -> int:
    items = engine_for(args).image_history(args.image)
    rows = []
    for h in items:
        created_by = h.get("CreatedBy", "")
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        hid = h.get("Id", "<missing>")
        if hid != "<missing>" and not args.no_trunc:
            hid = hid.split(":")[-1][:12]
        rows.append({"ID": hid, "CreatedSince": _ago(h.get("Created", 0)), "CreatedBy": created_by,
                     "Size": human_size(h.get("Size", 0)), "Comment": h.get("Comment", "")})
    if args.quiet:
        for r in rows:
            print(r["ID"])
        return 0
    if args.format:
        formatted(args.format, rows, {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedBy": "CREATED BY"})
        return 0
    table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
          [[r["ID"], r["CreatedSince"], r["CreatedBy"], r["Size"], r["Comment"]] for r in rows])
    return 0


def add_image_inspect(p):
    p.add_argument("-f", "--format")
    p.add_argument("images", nargs="+")


def cmd_image_inspect(args) -> int:
    engine = engine_for(args)
    found = [engine.image_inspect(ref) for ref in args.images]
    formatted(args.format, found) if args.format else dump_json(found)
    return 0


def add_prune(p):
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])


def cmd_prune(args) -> int:
    filters = parse_filter_flags(args.filter)
    if args.all:
        filters["dangling"] = ["false"]
    result = engine_for(args).image_prune(filters)
    deleted = result.get("ImagesDeleted") or []
    if deleted:
        print("Deleted Images:")
        for item in deleted:
            for k, v in item.items():
                print(f"{k.lower()}: {v}")
        print()
    print(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}")
    return 0
