"""What changed between two locks, per target: packages added, removed and changed.

Packages are matched by name within a target of the same name. A package is *changed*
when its version or build differs, and also when only its file differs (another channel,
or the channel replaced the file under the same name): a lock is about exact files.
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


def diff_locks(a: Lock, b: Lock) -> dict[str, Any]:
    """Per target name: presence in each lock, platforms, and the package differences."""
    targets: dict[str, Any] = {}
    for name in sorted(a["targets"].keys() | b["targets"].keys()):
        ta, tb = a["targets"].get(name), b["targets"].get(name)
        entry = diff_target(ta["packages"] if ta else [], tb["packages"] if tb else [])
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
            kind: sum(len(t[kind]) for t in targets.values())
            for kind in ("added", "removed", "changed")
        },
    }
