"""nanovisor's own routes for nano images (not part of Docker's API): POST /nano/build and POST /nano/slim,
the same operations as `nanovisor nano build|slim`, answered with JSON when done."""

from __future__ import annotations

from pathlib import Path

from nanovisor import errors
from nanovisor.api.request import Request
from nanovisor.api.responses import JSON, Response


def build(req: Request) -> Response:
    """?package=P (repeatable) &keep=PAT &drop=PAT &shell=1 &cache=DIR &t=TAG"""
    from nanovisor.nano.build import BuildOptions
    from nanovisor.nano.build import build as nano_build
    from nanovisor.nano.debcache import DEFAULT_CACHE

    packages = req.qlist("package")
    if not packages:
        raise errors.InvalidParameter("nano build: at least one package is required")
    opts = BuildOptions(packages=packages, tag=req.q("t") or None, keep=req.qlist("keep"), drop=req.qlist("drop"),
                        shell=req.qbool("shell"), cache=Path(req.q("cache") or DEFAULT_CACHE))
    result = nano_build(req.engine.images, opts)
    return JSON({"Id": result.image.id, "Size": result.size, "Dropped": result.dropped,
                 "Packages": [f"{d.name}={d.version}" for d in result.packages]})


def slim(req: Request) -> Response:
    """?image=REF &t=TAG &probe=CMD (repeatable) &http_probe=PORT (repeatable) &keep=PATH &wait=SECONDS"""
    from nanovisor.nano.slim import SlimOptions
    from nanovisor.nano.slim import slim as nano_slim

    image, tag = req.q("image"), req.q("t")
    if not image or not tag:
        raise errors.InvalidParameter("nano slim: image and t are required")
    try:
        ports = [int(p) for p in req.qlist("http_probe")]
        wait = float(req.q("wait") or 2.0)
    except ValueError:
        raise errors.InvalidParameter("nano slim: http_probe and wait must be numbers") from None
    report = nano_slim(req.engine, SlimOptions(image=image, tag=tag, probes=req.qlist("probe"), http_probes=ports,
                                               keep=req.qlist("keep"), wait=wait))
    return JSON(report)


ROUTES = [
    ("POST", "/nano/build", build),
    ("POST", "/nano/slim", slim),
]
