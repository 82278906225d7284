"""What changed between two locks, per target: packages added, removed and changed.

Packages are matched by name within a target of the same name. A package is *changed*
when its version or build differs, and also when only its file differs (another channel,
or the channel replaced the file under the same name): a lock is about exact files.

A target's PyPI packages are compared the same way, apart from the conda ones (a name can
be both a conda and a PyPI package), under the target's ``pypi`` key; each of their
entries says ``"source": "pypi"``. A PyPI package is changed when its version, its kind
(index, direct URL, VCS), its VCS commit or its file differs. The local pip lines (the
researcher's own code, not archived) are compared as lines.
"""

from __future__ import annotations

from typing import Any

Lock = dict[str, Any]

_SUMMARY = ("name", "version", "build", "channel", "subdir", "url", "sha256")


def _summary(package: dict[str, Any]) -> dict[str, Any]:
    return {key: package.get(key) for key in _SUMMARY}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    fields = [key for key in ("version", "build", "channel") if old.get(key) != new.get(key)]
    if not fields and (old["url"], old.get("sha256"), old.get("md5")) != (
        new["url"],
        new.get("sha256"),
        new.get("md5"),
    ):
        fields.append("file")
    return fields


def diff_target(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare two package lists (either may be empty, for a target only one lock has)."""
    before = {p["name"]: p for p in old}
    after = {p["name"]: p for p in new}
    changed = []
    for name in sorted(before.keys() & after.keys()):
        fields = _changes(before[name], after[name])
        if fields:
            changed.append(
                {
                    "name": name,
                    "fields": fields,
                    "from": _summary(before[name]),
                    "to": _summary(after[name]),
                }
            )
    return {
        "added": [_summary(after[n]) for n in sorted(after.keys() - before.keys())],
        "removed": [_summary(before[n]) for n in sorted(before.keys() - after.keys())],
        "changed": changed,
        "unchanged": len(before.keys() & after.keys()) - len(changed),
    }


_PYPI_SUMMARY = ("name", "version", "kind", "filename", "url", "sha256", "vcs")


def _pypi_summary(package: dict[str, Any]) -> dict[str, Any]:
    return {"source": "pypi", **{key: package.get(key) for key in _PYPI_SUMMARY}}


def _pypi_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    fields = [key for key in ("version", "kind") if old.get(key) != new.get(key)]
    if (old.get("vcs") or {}).get("commit") != (new.get("vcs") or {}).get("commit"):
        fields.append("commit")
    if not fields and (old["url"], old.get("sha256")) != (new["url"], new.get("sha256")):
        fields.append("file")
    return fields


def diff_pypi(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """Compare two targets' PyPI parts: packages by name, local lines as lines."""
    before = {p["name"]: p for p in (old or {}).get("pypi_packages") or []}
    after = {p["name"]: p for p in (new or {}).get("pypi_packages") or []}
    changed = []
    for name in sorted(before.keys() & after.keys()):
        fields = _pypi_changes(before[name], after[name])
        if fields:
            changed.append(
                {
                    "name": name,
                    "source": "pypi",
                    "fields": fields,
                    "from": _pypi_summary(before[name]),
                    "to": _pypi_summary(after[name]),
                }
            )
    local_before = list((old or {}).get("pypi_local") or [])
    local_after = list((new or {}).get("pypi_local") or [])
    return {
        "added": [_pypi_summary(after[n]) for n in sorted(after.keys() - before.keys())],
        "removed": [_pypi_summary(before[n]) for n in sorted(before.keys() - after.keys())],
        "changed": changed,
        "unchanged": len(before.keys() & after.keys()) - len(changed),
        "local_added": [line for line in local_after if line not in local_before],
        "local_removed": [line for line in local_before if line not in local_after],
    }


def diff_locks(a: Lock, b: Lock) -> dict[str, Any]:
    """Per target name: presence in each lock, platforms, and the package differences.

    `summary` counts conda and PyPI packages together, `pypi_summary` the PyPI ones alone.
    """
    targets: dict[str, Any] = {}
    for name in sorted(a["targets"].keys() | b["targets"].keys()):
        ta, tb = a["targets"].get(name), b["targets"].get(name)
        entry = diff_target(ta["packages"] if ta else [], tb["packages"] if tb else [])
        entry["pypi"] = diff_pypi(ta, tb)
        entry["in"] = "both" if ta and tb else ("a" if ta else "b")
        entry["platform"] = {
            "a": ta["platform"] if ta else None,
            "b": tb["platform"] if tb else None,
        }
        targets[name] = entry
    return {
        "a": a["id"],
        "b": b["id"],
        "identical": a["id"] == b["id"],
        "targets": targets,
        "summary": {
            kind: sum(len(t[kind]) + len(t["pypi"][kind]) for t in targets.values())
            for kind in ("added", "removed", "changed")
        },
        "pypi_summary": {
            kind: sum(len(t["pypi"][kind]) for t in targets.values())
            for kind in ("added", "removed", "changed")
        },
    }
