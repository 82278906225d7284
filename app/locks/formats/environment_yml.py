"""`environment.yml` for one target: every package pinned `name=version=build`, with channels.

This is the least exact format: conda re-solves it, so the channel a package comes from and
its hashes are not pinned (use the explicit file for that). It exists because it is what
`conda env create`, `micromamba create -f` and `pixi init --import` all read. The header
comment names the lock, the target and its virtual packages, which the format cannot hold.
"""

from __future__ import annotations

import yaml

from app.locks.formats.base import Lock, env_name, select_target

MEDIA_TYPE = "application/yaml; charset=utf-8"


def render_environment_yml(lock: Lock, target: str | None) -> str:
    """The pinned environment.yml for one target of the lock."""
    name, data = select_target(lock, target)
    channels = list(lock["spec"].get("channels", []))
    for package in data["packages"]:
        if package["channel"] not in channels:
            channels.append(package["channel"])
    document = {
        "name": env_name(lock),
        "channels": [*channels, "nodefaults"],
        "dependencies": [
            f"{p['name']}={p['version']}={p['build']}"
            for p in sorted(data["packages"], key=lambda p: p["name"])
        ],
    }
    header = (
        f"# condarchive lock {lock['id']}, target {name} ({data['platform']})\n"
        f"# virtual packages: {' '.join(data['virtual_packages']) or 'none'}\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=4096)
