"""What a nano image of a main package should look like when run: entrypoint, user, environment, ports,
and the few runtime directories and links the package's maintainer scripts would have made (we never run
those). Unknown packages get a generic profile: their own binary as entrypoint when there is one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NONROOT = 65532


@dataclass
class Profile:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    user: str = "nonroot"
    workdir: str = ""
    env: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    # (path, mode, uid) of directories the program writes to
    dirs: list[tuple[str, int, int]] = field(default_factory=list)
    # (path, target) symlinks, e.g. log files to the container's stdout
    links: list[tuple[str, str]] = field(default_factory=list)
    # (path, copied from) files the maintainer scripts would have installed
    copies: list[tuple[str, str]] = field(default_factory=list)
    # (name, uid) system users the program switches to
    users: list[tuple[str, int]] = field(default_factory=list)


def _nginx() -> Profile:
    return Profile(
        entrypoint=["/usr/sbin/nginx", "-g", "daemon off;"], user="root", ports=["80/tcp"],
        dirs=[("var/lib/nginx", 0o755, 0), ("var/log/nginx", 0o755, 0), ("run", 0o755, 0),
              ("var/www/html", 0o755, 0), ("etc/nginx/sites-enabled", 0o755, 0)],
        links=[("var/log/nginx/access.log", "/dev/stdout"), ("var/log/nginx/error.log", "/dev/stderr"),
               ("etc/nginx/sites-enabled/default", "/etc/nginx/sites-available/default")],
        copies=[("var/www/html/index.nginx-debian.html", "usr/share/nginx/html/index.html")],
        users=[("www-data", 33)])


PROFILES = {
    "python3": lambda: Profile(entrypoint=["/usr/bin/python3"], env=["LANG=C.UTF-8"], workdir="/home/nonroot"),
    "redis-server": lambda: Profile(entrypoint=["/usr/bin/redis-server"], cmd=["--protected-mode", "no"],
                                    workdir="/data", ports=["6379/tcp"], dirs=[("data", 0o755, NONROOT)]),
    "nginx-light": _nginx, "nginx": _nginx, "nginx-full": _nginx, "nginx-core": _nginx,
}


def profile_for(main: str, tree: Path) -> Profile:
    """The main package's profile; a generic one runs its same-named binary as nonroot."""
    if main in PROFILES:
        return PROFILES[main]()
    for d in ("usr/bin", "usr/sbin"):
        for name in (main, main.removesuffix("-server"), main.removesuffix("-bin")):
            if (tree / d / name).is_file():
                return Profile(entrypoint=[f"/{d}/{name}"])
    return Profile(user="nonroot")
