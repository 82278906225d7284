"""conda-lock's unified lockfile, format version 1 (`conda-lock.yml`).

The shape follows `conda_lock/lockfile/v1/models.py`: `version: 1`, `metadata`
(content_hash per platform, channels, platforms, sources) and one `package` entry per
(package, platform) with `manager: conda`, `dependencies` as ``{name: version spec}``,
`url`, `hash` (md5 and sha256), `category: main`, `optional: false`.

v1 keys packages by platform, so it has no room for named targets: a lock with one target
per platform renders (the target names go into `custom_metadata`), a lock with two targets
of the same platform (`linux-64` and `linux-64-cuda12`) raises :class:`CannotExpress`.
`content_hash` is condarchive's hash of that target's canonical form (conda-lock only
compares it with its own input hash to decide whether to re-lock, which can never match
for a file it did not write; `conda-lock install` ignores it). The creation time is the
lock's own, so the file never changes.
"""

from __future__ import annotations

from typing import Any

import yaml

from app.lockfiles.base import CannotExpress, Lock, Package, dependency_name
from app.specs import sha256_of

MEDIA_TYPE = "application/yaml; charset=utf-8"
FORMAT = "conda-lock"


def _dependencies(package: Package) -> dict[str, str]:
    """`["libfoo >=1.1", "python_abi 3.12.* *_cp312"]` -> `{libfoo: ">=1.1", python_abi: "3.12.*"}`.

    Like conda-lock, only the version part is kept; several specs for one name are joined.
    """
    merged: dict[str, list[str]] = {}
    for spec in package.get("depends", []):
        name = dependency_name(spec)
        rest = spec.strip()[len(name) :].strip()
        version = rest.split(" ", 1)[0] if rest else ""
        merged.setdefault(name, [])
        if version and version not in merged[name]:
            merged[name].append(version)
    return {name: ",".join(versions) for name, versions in sorted(merged.items())}


def _target_hash(target: dict[str, Any]) -> str:
    return sha256_of(
        {
            "platform": target["platform"],
            "virtual_packages": sorted(target["virtual_packages"]),
            "packages": sorted(
                (
                    {"url": p["url"], "sha256": p["sha256"], "md5": p["md5"], "size": p["size"]}
                    for p in target["packages"]
                ),
                key=lambda p: p["url"],
            ),
        }
    )


def check_expressible(lock: Lock) -> None:
    """Raise :class:`CannotExpress` when two targets share a platform."""
    seen: dict[str, str] = {}
    for name in sorted(lock["targets"]):
        platform = lock["targets"][name]["platform"]
        if platform in seen:
            raise CannotExpress(
                FORMAT,
                f"conda-lock v1 holds one environment per platform, but targets "
                f"{seen[platform]!r} and {name!r} are both {platform}",
            )
        seen[platform] = name


def render_conda_lock(lock: Lock) -> str:
    """The whole lock as one conda-lock.yml (every target, keyed by its platform)."""
    check_expressible(lock)
    targets = sorted(lock["targets"].items(), key=lambda item: item[1]["platform"])
    custom: dict[str, str] = {"condarchive.lock": lock["id"]}
    for name, target in targets:
        custom[f"condarchive.target.{target['platform']}"] = name
        custom[f"condarchive.virtual_packages.{target['platform']}"] = " ".join(
            target["virtual_packages"]
        )
    metadata: dict[str, Any] = {
        "content_hash": {t["platform"]: _target_hash(t) for _, t in targets},
        "channels": [{"url": url, "used_env_vars": []} for url in lock["spec"].get("channels", [])],
        "platforms": [t["platform"] for _, t in targets],
        "sources": [],
        "custom_metadata": custom,
    }
    if lock.get("created_at"):
        metadata["time_metadata"] = {"created_at": lock["created_at"]}
    packages = [
        {
            "name": p["name"],
            "version": p["version"],
            "manager": "conda",
            "platform": target["platform"],
            "dependencies": _dependencies(p),
            "url": p["url"],
            "hash": {"md5": p["md5"], "sha256": p["sha256"]}
            if p.get("sha256")
            else {"md5": p["md5"]},
            "build": p["build"],
            "category": "main",
            "optional": False,
        }
        for _, target in targets
        for p in sorted(target["packages"], key=lambda p: (p["name"], p["url"]))
    ]
    header = (
        f"# conda-lock v1 lockfile of condarchive lock {lock['id']}\n"
        "# Install this environment as YOURENV with:\n"
        "#     conda-lock install --name YOURENV conda-lock.yml\n"
    )
    body = yaml.safe_dump(
        {"version": 1, "metadata": metadata, "package": packages},
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return header + body
