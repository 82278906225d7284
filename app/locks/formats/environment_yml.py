"""`environment.yml` for one target: every package pinned `name=version=build`, with channels.

This is the least exact format: conda re-solves it, so the channel a package comes from and
its hashes are not pinned (use the explicit file for that). It exists because it is what
`conda env create`, `micromamba create -f` and `pixi init --import` all read. The header
comment names the lock, the target and its virtual packages, which the format cannot hold.

The PyPI part is a `pip:` list of `name==version` lines (a direct `name @ url` for a file
that did not come from an index). Local lines (the researcher's own code) are recorded
by the lock but not archived: they appear as comments after the list, to be run by hand.
Hashes need `requirements/{target}.txt`, which pip installs with `--require-hashes`.
"""

from __future__ import annotations

import yaml

from app.locks.formats.base import (
    Lock,
    Package,
    env_name,
    local_comment,
    pypi_local,
    pypi_packages,
    select_target,
)


def pip_line(package: Package) -> str:
    """`name==version`, or `name @ url` for a file that did not come from an index."""
    if package.get("kind", "index") == "index":
        return f"{package['name']}=={package['version']}"
    return f"{package['name']} @ {package['url']}"


MEDIA_TYPE = "application/yaml; charset=utf-8"


def render_environment_yml(lock: Lock, target: str | None) -> str:
    """The pinned environment.yml for one target of the lock."""
    name, data = select_target(lock, target)
    channels = list(lock["spec"].get("channels", []))
    for package in data["packages"]:
        if package["channel"] not in channels:
            channels.append(package["channel"])
    dependencies: list[object] = [
        f"{p['name']}={p['version']}={p['build']}"
        for p in sorted(data["packages"], key=lambda p: p["name"])
    ]
    pypi, local = pypi_packages(data), pypi_local(data)
    if pypi:
        dependencies.append({"pip": [pip_line(p) for p in pypi]})
    document = {
        "name": env_name(lock),
        "channels": [*channels, "nodefaults"],
        "dependencies": dependencies,
    }
    header = (
        f"# condarchive lock {lock['id']}, target {name} ({data['platform']})\n"
        f"# virtual packages: {' '.join(data['virtual_packages']) or 'none'}\n"
    )
    if pypi:
        header += f"# PyPI packages with their sha256: requirements/{name}.txt beside this lock\n"
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=4096)
    if local:  # after the pip list: comments, which YAML readers skip
        body += "".join(f"  {local_comment(line)}\n" for line in local)
    return header + body
