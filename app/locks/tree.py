"""Why is this package here: one target's dependency graph, read from the lock itself.

Edges go by name, as the solver matched them: a conda package's ``depends`` names the
locked conda packages it needs (virtual packages such as ``__glibc`` are no packages and
are left out); a PyPI package's ``requires`` (its Requires-Dist lines) names locked PyPI
packages, or the conda packages that provide them (``msgpack`` is conda's
``msgpack-python``: app/solve/pypi_names.py). A requirement under an environment marker
is followed only where the marker holds for the target (``colorama; sys_platform ==
"win32"`` is no edge on linux-64); one that depends on an extra is followed whenever the
package it names is locked, since which extras were asked for is not recorded.

Which requested spec pulled a package in comes from the requests that produced the lock
(:func:`app.locks.store.lock_requests`): each requested conda spec or PyPI requirement
matches the locked package of its name, and pulls in everything reachable from it. An
imported lock records no specs; its roots are then the packages nothing else requires.

Packages are named by id, ``conda:<name>`` or ``pypi:<name>``: a target may hold a conda
package and a PyPI package of one name (``cmake`` from both).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from packaging.markers import Marker, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from app.solve.pypi_names import pypi_names

#: A conda match spec's name: what comes before the first version or build operator, after
#: any ``channel::`` prefix (``numlib >=1.26``, ``numlib>=1.26``, ``numlib[version=...]``).
_CONDA_NAME = re.compile(r"^\s*(?:[^\s:]*::)?([^\s=<>!~\[(;,]+)")

#: ``sys_platform``, ``platform_system``, ``os_name`` and ``platform_machine`` of a subdir.
_MARKER_PLATFORMS = {
    "linux": ("linux", "Linux", "posix"),
    "osx": ("darwin", "Darwin", "posix"),
    "win": ("win32", "Windows", "nt"),
}
_MACHINES = {
    "linux-64": "x86_64",
    "linux-aarch64": "aarch64",
    "linux-ppc64le": "ppc64le",
    "linux-s390x": "s390x",
    "osx-64": "x86_64",
    "osx-arm64": "arm64",
    "win-64": "AMD64",
    "win-arm64": "ARM64",
}


def conda_name(spec: str) -> str | None:
    """The package name a conda match spec (or ``depends`` entry) names, lower-cased."""
    found = _CONDA_NAME.match(spec)
    return found.group(1).lower() if found else None


def pypi_requirement_name(line: str) -> tuple[str, Marker | None] | None:
    """The normalised name a PEP 508 line names, and its marker; None if it is no
    requirement (a local path, an option line)."""
    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return None
    return canonicalize_name(requirement.name), requirement.marker


def package_id(source: str, name: str) -> str:
    return f"{source}:{name}"


@dataclass
class TreePackage:
    """One locked package and its place in the target's graph (ids, sorted)."""

    id: str
    name: str
    version: str
    source: str  # conda | pypi
    requires: list[str] = field(default_factory=list)
    required_by: list[str] = field(default_factory=list)
    requested_by: list[str] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "requires": self.requires,
            "required_by": self.required_by,
            "requested_by": self.requested_by,
        }


@dataclass
class Root:
    """A requested spec and the locked package it names (None: nothing of that name is
    locked in this target, e.g. a virtual package or a spec of another target)."""

    spec: str
    source: str
    package: str | None
    requested: bool = True  # False: no spec was recorded, the package is merely on top

    def view(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "source": self.source,
            "package": self.package,
            "requested": self.requested,
        }


@dataclass
class DependencyTree:
    target: str
    platform: str
    packages: dict[str, TreePackage]
    roots: list[Root]

    def view(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "platform": self.platform,
            "roots": [root.view() for root in self.roots],
            "packages": [self.packages[key].view() for key in sorted(self.packages)],
        }


def marker_environment(platform: str, conda_packages: Iterable[dict[str, Any]]) -> dict[str, str]:
    """The PEP 508 marker values of a target, from its subdir and its conda python; empty
    (markers are then not evaluated) when the target has no python."""
    python = next((p for p in conda_packages if p["name"] == "python"), None)
    kind = platform.split("-", 1)[0]
    if python is None or kind not in _MARKER_PLATFORMS:
        return {}
    version = str(python["version"])
    sys_platform, system, os_name = _MARKER_PLATFORMS[kind]
    return {
        "python_version": ".".join(version.split(".")[:2]),
        "python_full_version": version,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": sys_platform,
        "platform_system": system,
        "os_name": os_name,
        "platform_machine": _MACHINES.get(platform, ""),
        "extra": "",
    }


def _marker_holds(marker: Marker | None, environment: dict[str, str]) -> bool:
    if marker is None or not environment or "extra" in str(marker):
        return True
    try:
        return marker.evaluate(environment)
    except UndefinedEnvironmentName:
        return True


def build_graph(target: dict[str, Any]) -> dict[str, TreePackage]:
    """Every package of a lock target (``lock_view(...)["targets"][name]``) with the
    packages it requires and is required by."""
    conda = target.get("packages") or []
    pypi = target.get("pypi_packages") or []
    packages: dict[str, TreePackage] = {}
    for p in conda:
        key = package_id("conda", p["name"])
        packages[key] = TreePackage(key, p["name"], str(p["version"]), "conda")
    for p in pypi:
        key = package_id("pypi", p["name"])
        packages[key] = TreePackage(key, p["name"], str(p["version"]), "pypi")
    # a PyPI name -> the package providing it: PyPI's own, else the conda one (held)
    provides: dict[str, str] = {}
    for p in conda:
        for name in pypi_names(p["name"]):
            provides.setdefault(name, package_id("conda", p["name"]))
    for p in pypi:
        provides[p["name"]] = package_id("pypi", p["name"])
    environment = marker_environment(target.get("platform", ""), conda)
    edges: dict[str, set[str]] = {key: set() for key in packages}
    for p in conda:
        key = package_id("conda", p["name"])
        for spec in p.get("depends") or ():
            name = conda_name(spec)
            needed = package_id("conda", name) if name else None
            if needed in packages and needed != key:
                edges[key].add(needed)
    for p in pypi:
        key = package_id("pypi", p["name"])
        for line in p.get("requires") or ():
            parsed = pypi_requirement_name(line)
            if parsed is None or not _marker_holds(parsed[1], environment):
                continue
            needed = provides.get(parsed[0])
            if needed is not None and needed != key:
                edges[key].add(needed)
    reverse: dict[str, set[str]] = {key: set() for key in packages}
    for key, needed in edges.items():
        for other in needed:
            reverse[other].add(key)
    for key, package in packages.items():
        package.requires = sorted(edges[key])
        package.required_by = sorted(reverse[key])
    return packages


def _requested_specs(requests: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(spec, source) of every request, conda specs then PyPI requirements, each once."""
    seen: dict[tuple[str, str], None] = {}
    for request in requests:
        spec = request.get("spec") or {}
        for dependency in spec.get("dependencies") or ():
            seen[(str(dependency), "conda")] = None
        for line in (spec.get("pypi") or {}).get("requirements") or ():
            seen[(str(line), "pypi")] = None
    return sorted(seen, key=lambda item: (item[1] != "conda", item[0]))


def _root_package(spec: str, source: str, packages: dict[str, TreePackage]) -> str | None:
    if source == "conda":
        name = conda_name(spec)
        key = package_id("conda", name) if name else None
        return key if key in packages else None
    parsed = pypi_requirement_name(spec)
    if parsed is None:
        return None
    for key in (package_id("pypi", parsed[0]), package_id("conda", parsed[0])):
        if key in packages:
            return key
    # a requirement conda satisfies under another name (msgpack -> msgpack-python)
    for key, package in packages.items():
        if package.source == "conda" and parsed[0] in pypi_names(package.name):
            return key
    return None


def _reachable(start: str, packages: dict[str, TreePackage]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for needed in packages[stack.pop()].requires:
            if needed not in seen:
                seen.add(needed)
                stack.append(needed)
    return seen


def dependency_tree(
    lock: dict[str, Any], target: str, requests: Iterable[dict[str, Any]] = ()
) -> DependencyTree:
    """The graph of `target` of `lock` (a lock view), its roots, and for each package the
    requested specs that pulled it in. KeyError for a target the lock does not have."""
    data = lock["targets"][target]
    packages = build_graph(data)
    roots = [
        Root(spec, source, _root_package(spec, source, packages))
        for spec, source in _requested_specs(requests)
    ]
    for root in roots:
        if root.package is None:
            continue
        label = root.spec if root.source == "conda" else f"pip: {root.spec}"
        for key in _reachable(root.package, packages):
            if label not in packages[key].requested_by:
                packages[key].requested_by.append(label)
    for package in packages.values():
        package.requested_by.sort()
    reached: set[str] = set()
    for root in roots:
        if root.package is not None:
            reached |= _reachable(root.package, packages)
    # what no recorded spec reaches (an imported lock records none) hangs from its own top
    roots += [
        Root(packages[key].name, packages[key].source, key, requested=False)
        for key in top_level(packages, reached)
    ]
    return DependencyTree(target, data["platform"], packages, roots)


def top_level(packages: dict[str, TreePackage], reached: set[str] | None = None) -> list[str]:
    """Of the packages not `reached`: those nothing else unreached requires, then one of
    each cycle left, so that every package is reachable from `reached` or from them."""
    reached = set(reached or ())
    left = [key for key in sorted(packages) if key not in reached]
    tops = [key for key in left if not set(packages[key].required_by) - reached]
    for key in tops:
        reached |= _reachable(key, packages)
    for key in left:
        if key not in reached:
            tops.append(key)
            reached |= _reachable(key, packages)
    return tops


# --- printing, as `pixi tree` does -------------------------------------------------------

_BRANCH, _LAST, _PIPE, _SPACE = "├── ", "└── ", "│   ", "    "


def _label(package: dict[str, Any], asked: dict[str, list[str]] | None = None) -> str:
    text = f"{package['name']} {package['version']}"
    if package["source"] == "pypi":
        text += " (pypi)"
    if asked and package["id"] in asked:
        text += f" [requested: {', '.join(asked[package['id']])}]"
    return text


def _print_children(
    lines: list[str],
    packages: dict[str, dict[str, Any]],
    children: list[str],
    edge: str,
    prefix: str,
    shown: set[str],
    path: set[str],
    asked: dict[str, list[str]] | None = None,
) -> None:
    for index, key in enumerate(children):
        last = index == len(children) - 1
        package = packages[key]
        grandchildren = [k for k in package[edge] if k in packages]
        repeated = key in shown and bool(grandchildren)
        cycle = key in path
        mark = " (*)" if repeated or cycle else ""
        lines.append(f"{prefix}{_LAST if last else _BRANCH}{_label(package, asked)}{mark}")
        if repeated or cycle:
            continue
        shown.add(key)
        _print_children(
            lines,
            packages,
            grandchildren,
            edge,
            prefix + (_SPACE if last else _PIPE),
            shown,
            path | {key},
            asked,
        )


def render_tree(tree: dict[str, Any]) -> str:
    """The tree JSON (:meth:`DependencyTree.view`) as `pixi tree` prints it: the requested
    packages at the top, each package's dependencies below it, a subtree shown once and
    marked ``(*)`` where it appears again."""
    packages = {p["id"]: p for p in tree["packages"]}
    roots: list[str] = []
    for root in tree["roots"]:
        if root["package"] in packages and root["package"] not in roots:
            roots.append(root["package"])
    lines: list[str] = []
    _print_children(lines, packages, roots, "requires", "", set(), set())
    return "\n".join(lines) + ("\n" if lines else "")


def find_packages(tree: dict[str, Any], name: str) -> list[str]:
    """The ids of the packages called `name` (conda name, or PyPI name normalised)."""
    wanted = {name.lower(), canonicalize_name(name)}
    return [p["id"] for p in tree["packages"] if p["name"] in wanted]


def render_inverted(tree: dict[str, Any], name: str) -> str:
    """Who requires `name`, and who requires them, up to the requested packages: each
    line is required by the lines indented below it (`pixi tree --invert`)."""
    packages = {p["id"]: p for p in tree["packages"]}
    asked: dict[str, list[str]] = {}
    for root in tree["roots"]:
        if root["package"] in packages and root["requested"]:
            label = root["spec"] if root["source"] == "conda" else f"pip: {root['spec']}"
            asked.setdefault(root["package"], []).append(label)
    lines: list[str] = []
    for key in find_packages(tree, name):
        package = packages[key]
        pulled = [spec for spec in package["requested_by"] if spec not in asked.get(key, [])]
        because = f" (pulled in by: {', '.join(pulled)})" if pulled else ""
        lines.append(_label(package, asked) + because)
        children = package["required_by"]
        _print_children(lines, packages, children, "required_by", "", set(), {key}, asked)
    return "\n".join(lines) + ("\n" if lines else "")
