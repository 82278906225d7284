"""Installing into a prefix without damaging it: where a package may write, whether a
platform runs here, and the staged install that replaces a prefix only once the new one
is complete (shared by `install` from a server and `install --bundle`)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def linked_paths(package: Path, scratch: Path) -> list[tuple[str, str | None]]:
    """(path, the symlink it lies under or None) for each path the linker writes."""
    from rattler.package import PathsJson
    from rattler.package_streaming import extract

    try:
        paths = PathsJson.from_package_archive(package)
    except Exception:  # noqa: BLE001 - an old package: no paths.json, read as the linker does
        extract(package, scratch)
        paths = PathsJson.from_package_directory_with_deprecated_fallback(scratch)
    entries = [(str(e.relative_path), bool(e.path_type.softlink)) for e in paths.paths]
    links = {path for path, softlink in entries if softlink}
    found: list[tuple[str, str | None]] = []
    for path, _ in entries:
        parts = path.replace("\\", "/").split("/")
        parents = ("/".join(parts[:n]) for n in range(1, len(parts)))
        found.append((path, next((p for p in parents if p in links), None)))
    return found


def escapes(path: str, link: str | None) -> str:
    """Why writing `path` under the prefix would leave it ('' when it would not)."""
    parts = path.replace("\\", "/").split("/")
    drive = len(parts[0]) == 2 and parts[0][1] == ":"
    if path.startswith(("/", "\\")) or drive:
        return "is absolute, and would be written"
    if ".." in parts:
        return "climbs with '..', and would be written"
    if link:
        return f"lies under the symlink {link!r} the package links, and could be written"
    return ""


def runs_here(platform: str) -> bool:
    """Can an environment for `platform` run on this machine? Its own platform (rattler's
    current one) and noarch can; so can osx-64 on osx-arm64, which macOS runs under
    Rosetta 2 (as conda does with CONDA_SUBDIR=osx-64). Nothing else is emulated."""
    import rattler

    here = str(rattler.Subdir.current())
    return platform in (here, "noarch") or (here, platform) == ("osx-arm64", "osx-64")


def prefix_refusal(prefix: Path, force: bool) -> str:
    """Why installing into `prefix` would damage what is there ('' when it would not)."""
    if prefix.parent == prefix:
        return f"refusing to install into {prefix}, the root of the filesystem"
    if not os.path.lexists(prefix):
        return ""
    if not prefix.is_dir():
        return f"{prefix} exists and is not a directory; refusing to replace it"
    if not any(prefix.iterdir()):
        return ""
    if not force:
        return (
            f"{prefix} exists and is not empty; pass --force to replace it (it is replaced "
            "only once the new environment is complete)"
        )
    if not (prefix / "conda-meta").is_dir():
        return (
            f"{prefix} is not empty and is not a conda environment (it has no conda-meta/); "
            "refusing to replace it, even with --force"
        )
    cwd = Path.cwd().resolve()
    if cwd == prefix or prefix in cwd.parents:
        return f"refusing to replace {prefix}: the current directory is inside it"
    return ""


class InstallFailed(Exception):
    """The environment was linked but is not what the lock says."""


def install_staged(prefix: Path, link: Callable[[Path], None]) -> None:
    """Run `link` on a new sibling of `prefix` (same filesystem), then put it in place of
    `prefix` by renames; on any failure remove what was made and leave `prefix` alone."""
    created = next((p for p in reversed(prefix.parents) if not p.exists()), None)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.condarchive-new-", dir=prefix.parent))
    try:
        link(staging)
        swap_in(staging, prefix)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise


def swap_in(staging: Path, prefix: Path) -> None:
    """Rename `staging` to `prefix`, moving an existing `prefix` aside first and deleting
    it only once the new one is in place (a failed rename puts it back)."""
    if not os.path.lexists(prefix):
        staging.rename(prefix)
        return
    old = prefix.parent / f".{prefix.name}.condarchive-old-{secrets.token_hex(4)}"
    prefix.rename(old)
    try:
        staging.rename(prefix)
    except BaseException:
        old.rename(prefix)
        raise
    shutil.rmtree(old, ignore_errors=True)


def prefix_problems(prefix: Path, packages: list[dict[str, Any]]) -> list[str]:
    """Every locked package is installed, with the lock's sha256 (else what is not)."""
    installed: dict[str, dict[str, Any]] = {}
    for path in (prefix / "conda-meta").glob("*.json"):
        data = json.loads(path.read_text())
        if "name" in data:
            installed[data["name"]] = data
    problems = []
    for package in packages:
        record = installed.get(package["name"])
        if record is None:
            problems.append(f"{package['name']} is not installed")
        elif package["sha256"] and record.get("sha256") != package["sha256"]:
            problems.append(
                f"{package['name']}: installed sha256 {record.get('sha256')} "
                f"is not the lock's {package['sha256']}"
            )
    return problems
