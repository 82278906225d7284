"""What every renderer shares: picking a target, the errors a route turns into 4xx, ordering.

Renderers read the lock dict that :func:`app.locks.store.lock_view` returns (optionally with the
extra record fields :func:`app.locks.document.lock_document` adds, and one request's view as
``request`` when the reader came from it) and nothing else: no clock, no settings, no
server URL. That is what makes a permalink's bytes the same on every request and after
every restart.
"""

from __future__ import annotations

from typing import Any

Lock = dict[str, Any]
Package = dict[str, Any]


class LockfileError(Exception):
    """A lock cannot be rendered as asked; `message` says why in words a user can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownTarget(LockfileError):
    """The request named no target, or one the lock does not have."""

    def __init__(self, message: str, available: list[str]) -> None:
        super().__init__(message)
        self.available = available


class CannotExpress(LockfileError):
    """The format cannot hold this lock (e.g. conda-lock v1 and two targets of one platform)."""

    def __init__(self, fmt: str, message: str) -> None:
        super().__init__(message)
        self.format = fmt


def select_target(lock: Lock, name: str | None) -> tuple[str, dict[str, Any]]:
    """The named target, or the only one when no name is given."""
    targets: dict[str, Any] = lock["targets"]
    available = sorted(targets)
    if name is None:
        if len(available) == 1:
            return available[0], targets[available[0]]
        raise UnknownTarget(
            f"this lock has {len(available)} targets; name one of: {', '.join(available)}",
            available,
        )
    if name not in targets:
        raise UnknownTarget(
            f"this lock has no target {name!r}; it has: {', '.join(available)}", available
        )
    return name, targets[name]


def dependency_name(spec: str) -> str:
    """`libfoo >=1.1` -> `libfoo` (the name is everything up to the first space or operator)."""
    name = spec.strip().split(" ", 1)[0]
    for stop in ("=", "<", ">", "!", "~", "["):
        name = name.split(stop, 1)[0]
    return name


def topological(packages: list[Package]) -> list[Package]:
    """Dependencies before dependents, ties broken by name, so explicit installs go in order.

    Conda installs an explicit file in file order, and CEP text-spec files say lines
    SHOULD be topological. Cycles (rare, but real in some channels) are broken by name.
    """
    by_name = {p["name"]: p for p in sorted(packages, key=lambda p: (p["name"], p["url"]))}
    deps = {
        name: sorted({dependency_name(d) for d in p.get("depends", [])} & by_name.keys() - {name})
        for name, p in by_name.items()
    }
    done: set[str] = set()
    order: list[Package] = []
    for root in by_name:
        # Iterative depth-first search: a deep dependency chain must not hit the recursion limit.
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path: set[str] = set()
        while stack:
            name, index = stack.pop()
            if name in done:
                continue
            on_path.add(name)
            pending = [d for d in deps[name][index:] if d not in done and d not in on_path]
            if pending:
                stack.append((name, deps[name].index(pending[0]) + 1))
                stack.append((pending[0], 0))
                continue
            on_path.discard(name)
            done.add(name)
            order.append(by_name[name])
    return order


def env_name(lock: Lock) -> str:
    """The name one request gave the environment, when the lock is rendered for that request
    (the dict then carries it as ``request``, see app/web/routes/permalinks.py), else a
    stable one derived from the lock id. A lock has no name of its own: requests with
    different names can resolve to one lock, and none of them names it for the others."""
    name = (lock.get("request") or {}).get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    return f"lock-{lock['id'][:12]}"


# --- the PyPI part ----------------------------------------------------------------------


def pypi_packages(target: dict[str, Any]) -> list[Package]:
    """A target's PyPI packages (app/locks/pypi_records.py fields), sorted by name, url."""
    return sorted(target.get("pypi_packages") or [], key=lambda p: (p["name"], p["url"]))


def pypi_local(target: dict[str, Any]) -> list[str]:
    """The target's pip lines that are the researcher's own code, recorded, not archived."""
    return list(target.get("pypi_local") or [])


def single_index(packages: list[Package]) -> str | None:
    """The one index every index package of the list came from, when there is one."""
    indexes = {p.get("index") for p in packages if p.get("kind", "index") == "index"}
    if len(indexes) == 1 and None not in indexes:
        return indexes.pop()
    return None


def conda_python(target: dict[str, Any]) -> str | None:
    """The version of the conda `python` package of the target, if it has one."""
    for package in target.get("packages") or []:
        if package["name"] == "python":
            return str(package["version"])
    return None


def file_url(package: Package, urls: dict[str, str] | None) -> str:
    """Where the file is fetched: its archived copy when `urls` maps it, else upstream."""
    return (urls or {}).get(package["url"], package["url"])


def local_comment(line: str) -> str:
    return f"# local, not archived: {line}"
