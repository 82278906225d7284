"""conda-lock v1 files: one target per platform, named as condarchive wrote them if so."""

from __future__ import annotations

import yaml

from app import safe_yaml
from app.imports.entries import Entry, LineError, ParsedFile, check_url, make_target


def _package_lines(text: str) -> list[int]:
    """Line of each item under the top-level `package:` key of a conda-lock.yml."""
    root = safe_yaml.compose(text)
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if getattr(key, "value", None) == "package" and isinstance(value, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value.value]
    return []


def parse_conda_lock(text: str) -> ParsedFile:
    """A conda-lock v1 file: one target per platform (named as condarchive wrote them, if so)."""
    try:
        data = safe_yaml.load(text)
        lines = _package_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise LineError(mark.line + 1 if mark else 0, f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != 1:
        raise LineError(0, "only conda-lock format version 1 files can be imported")
    metadata = data.get("metadata") or {}
    custom = metadata.get("custom_metadata") or {}
    packages = data.get("package")
    if not isinstance(packages, list) or not packages:
        raise LineError(0, "the conda-lock file lists no packages")
    by_platform: dict[str, list[Entry]] = {}
    first_line: dict[str, int] = {}
    for index, package in enumerate(packages):
        number = lines[index] if index < len(lines) else 0
        if not isinstance(package, dict):
            raise LineError(number, "a package entry must be a mapping")
        if package.get("manager") != "conda":
            raise LineError(
                number,
                f"{package.get('name')!r} is a {package.get('manager')} package; "
                "only conda packages can be archived",
            )
        url, platform = str(package.get("url") or ""), str(package.get("platform") or "")
        check_url(number, url)
        hashes = package.get("hash") or {}
        by_platform.setdefault(platform, []).append(
            Entry(number, url, hashes.get("md5") or None, hashes.get("sha256") or None)
        )
        first_line.setdefault(platform, number)
    targets = tuple(
        make_target(
            custom.get(f"condarchive.target.{platform}"),
            platform,
            (custom.get(f"condarchive.virtual_packages.{platform}") or "").split() or None,
            entries,
            first_line[platform],
        )
        for platform, entries in sorted(by_platform.items())
    )
    channels = tuple(
        str(c.get("url") if isinstance(c, dict) else c) for c in metadata.get("channels") or []
    )
    return ParsedFile("conda-lock", targets, channels)
