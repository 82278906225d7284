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

The PyPI part is written as conda-lock 4 writes it: one `manager: pip` entry per
(file, platform) with `dependencies` from the file's Requires-Dist (markers dropped,
extras left out), the file `url` and `hash: {sha256}`. The index they came from goes in
`custom_metadata` (:data:`PYPI_INDEXES_KEY`). Local pip lines (the researcher's own code)
cannot be expressed: the header comment lists them.

Reading it back: one target per platform, named as condarchive wrote them, if so
(:data:`TARGET_KEY` and :data:`VIRTUAL_PACKAGES_KEY` in `custom_metadata`); `manager: pip`
entries become that platform's PyPI entries, checked against their index by the importer.
"""

from __future__ import annotations

from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from app.core import safe_yaml
from app.core.canonical import sha256_of
from app.locks.formats.base import (
    CannotExpress,
    Lock,
    Package,
    dependency_name,
    local_comment,
    pypi_local,
    pypi_packages,
)
from app.locks.formats.entries import (
    Entry,
    LineError,
    ParsedFile,
    PyPIEntry,
    check_pypi_url,
    check_url,
    make_target,
)

MEDIA_TYPE = "application/yaml; charset=utf-8"
FORMAT = "conda-lock"
#: `custom_metadata` keys that carry what v1 has no room for; written and read here.
LOCK_KEY = "condarchive.lock"
TARGET_KEY = "condarchive.target.{platform}"
VIRTUAL_PACKAGES_KEY = "condarchive.virtual_packages.{platform}"
PYPI_INDEXES_KEY = "condarchive.pypi_indexes"


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


def _pip_dependencies(package: Package) -> dict[str, str]:
    """Requires-Dist lines as conda-lock writes them: ``{name: specifier or "*"}``, without
    markers; requirements only an extra asks for are left out."""
    merged: dict[str, list[str]] = {}
    for line in package.get("requires") or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and "extra" in str(requirement.marker):
            continue
        name = canonicalize_name(requirement.name)
        spec = str(requirement.specifier)
        merged.setdefault(name, [])
        if spec and spec not in merged[name]:
            merged[name].append(spec)
    return {name: ",".join(specs) or "*" for name, specs in sorted(merged.items())}


def _pip_entry(package: Package, platform: str) -> dict[str, Any]:
    return {
        "name": package["name"],
        "version": package["version"],
        "manager": "pip",
        "platform": platform,
        "dependencies": _pip_dependencies(package),
        "url": package["url"],
        "hash": {"sha256": package["sha256"]},
        "category": "main",
        "optional": False,
    }


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
    custom: dict[str, str] = {LOCK_KEY: lock["id"]}
    for name, target in targets:
        custom[TARGET_KEY.format(platform=target["platform"])] = name
        custom[VIRTUAL_PACKAGES_KEY.format(platform=target["platform"])] = " ".join(
            target["virtual_packages"]
        )
    indexes = list(
        dict.fromkeys(p["index"] for _, t in targets for p in pypi_packages(t) if p.get("index"))
    )
    if indexes:
        custom[PYPI_INDEXES_KEY] = " ".join(indexes)
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
    packages += [_pip_entry(p, t["platform"]) for _, t in targets for p in pypi_packages(t)]
    header = (
        f"# conda-lock v1 lockfile of condarchive lock {lock['id']}\n"
        "# Install this environment as YOURENV with:\n"
        "#     conda-lock install --name YOURENV conda-lock.yml\n"
    )
    local = [(name, line) for name, t in targets for line in pypi_local(t)]
    if local:
        header += (
            "# conda-lock cannot express the researcher's own code, which the lock records\n"
            "# but does not archive; install it yourself after the environment:\n"
        )
        header += "".join(f"#   target {name}: {local_comment(line)[2:]}\n" for name, line in local)
    body = yaml.safe_dump(
        {"version": 1, "metadata": metadata, "package": packages},
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return header + body


# --- reading ----------------------------------------------------------------------------


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
    metadata = _mapping(data.get("metadata"), "metadata")
    custom = _mapping(metadata.get("custom_metadata"), "metadata.custom_metadata")
    packages = data.get("package")
    if not isinstance(packages, list) or not packages:
        raise LineError(0, "the conda-lock file lists no packages")
    by_platform: dict[str, list[Entry]] = {}
    pip_by_platform: dict[str, list[PyPIEntry]] = {}
    first_line: dict[str, int] = {}
    for index, package in enumerate(packages):
        number = lines[index] if index < len(lines) else 0
        if not isinstance(package, dict):
            raise LineError(number, "a package entry must be a mapping")
        if package.get("manager") == "pip":
            entry = _pip_parsed(package, number)
            pip_by_platform.setdefault(str(package.get("platform") or ""), []).append(entry)
            continue
        if package.get("manager") != "conda":
            raise LineError(
                number,
                f"{package.get('name')!r} is a {package.get('manager')} package; "
                "only conda and pip packages can be archived",
            )
        url, platform = str(package.get("url") or ""), str(package.get("platform") or "")
        check_url(number, url)
        hashes = _mapping(package.get("hash"), "hash", number)
        md5, sha256 = (_text(hashes.get(key), f"hash.{key}", number) for key in ("md5", "sha256"))
        by_platform.setdefault(platform, []).append(Entry(number, url, md5, sha256))
        first_line.setdefault(platform, number)
    for platform, pip_entries in pip_by_platform.items():
        if platform not in by_platform:
            raise LineError(
                pip_entries[0].line,
                f"pip package {pip_entries[0].name!r} is for platform {platform!r}, "
                "which has no conda packages (and so no Python)",
            )
    targets = []
    for platform, entries in sorted(by_platform.items()):
        target_key = TARGET_KEY.format(platform=platform)
        vps_key = VIRTUAL_PACKAGES_KEY.format(platform=platform)
        name = _text(custom.get(target_key), f"metadata.custom_metadata[{target_key!r}]")
        vps = _text(custom.get(vps_key), f"metadata.custom_metadata[{vps_key!r}]")
        targets.append(
            make_target(
                name,
                platform,
                (vps or "").split() or None,
                entries,
                first_line[platform],
                pip_by_platform.get(platform),
            )
        )
    channels = metadata.get("channels") or []
    if not isinstance(channels, list):
        raise LineError(0, f"metadata.channels must be a list, not {_kind(channels)}")
    urls = tuple(
        _text(c.get("url") if isinstance(c, dict) else c, f"metadata.channels[{i}]") or ""
        for i, c in enumerate(channels)
    )
    indexes = _text(custom.get(PYPI_INDEXES_KEY), f"metadata.custom_metadata[{PYPI_INDEXES_KEY!r}]")
    return ParsedFile("conda-lock", tuple(targets), urls, tuple((indexes or "").split()))


def _pip_parsed(package: dict[str, Any], number: int) -> PyPIEntry:
    """A `manager: pip` entry: name, version, url and its sha256 (conda-lock writes no more
    than the dependency names, so requirements come from the index)."""
    name = _text(package.get("name"), "name", number)
    version = _text(package.get("version"), "version", number)
    url = _text(package.get("url"), "url", number) or ""
    if not name or not version:
        raise LineError(number, "a pip package entry needs a name and a version")
    url, _, fragment = url.partition("#")
    check_pypi_url(number, url)
    hashes = _mapping(package.get("hash"), "hash", number)
    sha256 = _text(hashes.get("sha256"), "hash.sha256", number)
    if sha256 is None and fragment.startswith("sha256="):
        sha256 = fragment.removeprefix("sha256=")
    return PyPIEntry(number, str(canonicalize_name(name)), str(version), url, sha256)


def _kind(value: object) -> str:
    return {list: "a list", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _mapping(value: object, field: str, line: int = 0) -> dict[str, Any]:
    """`value` when it is a mapping (or missing: empty); otherwise 422 naming `field`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LineError(line, f"{field} must be a mapping, not {_kind(value)}")
    return value


def _text(value: object, field: str, line: int = 0) -> str | None:
    """`value` when it is a string (or missing/empty: None); otherwise 422 naming `field`."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise LineError(line, f"{field} must be a string, not {_kind(value)}")
    return value
