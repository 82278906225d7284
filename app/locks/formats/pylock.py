"""`pylock/{target}.toml`: a target's PyPI packages as a PEP 751 lock file.

One ``[[packages]]`` table per file the target installs::

    lock-version = "1.0"
    environments = ['sys_platform == "linux" and platform_machine == "x86_64"']
    requires-python = "==3.12.*"
    created-by = "condarchive"

    [[packages]]
    name = "pure-dep"
    version = "2.0"
    index = "https://pypi.org/simple"
    [[packages.wheels]]
    name = "pure_dep-2.0-py3-none-any.whl"
    url = "https://files.pythonhosted.org/…/pure_dep-2.0-py3-none-any.whl"
    size = 1234
    hashes = {sha256 = "…"}

A wheel is a ``[[packages.wheels]]`` entry, an sdist ``[packages.sdist]``, a direct URL
``[packages.archive]`` and a VCS checkout ``[packages.vcs]`` (its commit), each with the
size and sha256 the lock holds. With `urls` (the archive), every file is the archived copy
(a VCS checkout then as the ``archive`` condarchive made of the commit). `environments`
and `requires-python` say which platform and Python (conda's) the target is for.
Local lines (the researcher's own code) are comments: recorded, not archived. The
conda part is the explicit file of the same target.
"""

from __future__ import annotations

import json
from typing import Any

from app.locks.formats.base import (
    Lock,
    Package,
    conda_python,
    file_url,
    local_comment,
    pypi_local,
    pypi_packages,
    select_target,
)

MEDIA_TYPE = "application/toml; charset=utf-8"
FORMAT = "pylock"

#: PEP 508 markers of the conda platforms a PyPI environment can be told apart by.
PLATFORM_MARKERS = {
    "linux-64": 'sys_platform == "linux" and platform_machine == "x86_64"',
    "linux-aarch64": 'sys_platform == "linux" and platform_machine == "aarch64"',
    "linux-ppc64le": 'sys_platform == "linux" and platform_machine == "ppc64le"',
    "osx-64": 'sys_platform == "darwin" and platform_machine == "x86_64"',
    "osx-arm64": 'sys_platform == "darwin" and platform_machine == "arm64"',
    "win-64": 'sys_platform == "win32" and platform_machine == "AMD64"',
    "win-arm64": 'sys_platform == "win32" and platform_machine == "ARM64"',
}


def _value(value: Any) -> str:
    """A TOML value: JSON's string escapes are TOML basic-string escapes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _table(header: str, fields: dict[str, Any]) -> list[str]:
    return [header, *(f"{k} = {_value(v)}" for k, v in fields.items() if v is not None)]


def _file(package: Package, urls: dict[str, str] | None, with_name: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": package["filename"]} if with_name else {}
    fields.update(
        url=file_url(package, urls), size=int(package["size"]), hashes={"sha256": package["sha256"]}
    )
    return fields


def _package(package: Package, urls: dict[str, str] | None) -> list[str]:
    kind = package.get("kind", "index")
    head: dict[str, Any] = {"name": package["name"], "version": package["version"]}
    if kind == "index" and urls is None:
        head["index"] = package.get("index")
    head["requires-python"] = package.get("requires_python")
    lines = ["", *_table("[[packages]]", head)]
    vcs = package.get("vcs")
    if kind == "vcs" and vcs and urls is None:
        fields = {
            "type": vcs.get("type"),
            "url": vcs.get("url"),
            "requested-revision": vcs.get("requested_revision"),
            "commit-id": vcs.get("commit"),
        }
        return lines + _table("[packages.vcs]", fields)
    if kind != "index":
        return lines + _table("[packages.archive]", _file(package, urls, False))
    if package["filename"].endswith(".whl"):
        return lines + _table("[[packages.wheels]]", _file(package, urls, True))
    return lines + _table("[packages.sdist]", _file(package, urls, True))


def render_pylock(lock: Lock, target: str | None, urls: dict[str, str] | None = None) -> str:
    """The PEP 751 lock of one target's PyPI part; with `urls`, from the archived copies."""
    name, data = select_target(lock, target)
    packages, local = pypi_packages(data), pypi_local(data)
    python = conda_python(data)
    lines = [
        f"# PEP 751 lock of the PyPI packages of condarchive lock {lock['id']}",
        f"# target {name} ({data['platform']}); the conda part is explicit/{name}.txt",
        "# Saved as pylock.toml (PEP 751 names it so), install into that environment with:",
        "#     uv pip install -r pylock.toml",
    ]
    if urls is not None:
        lines.append("# Every file is fetched from condarchive's archive.")
    if local:
        lines.append("# The researcher's own code, recorded by the lock but not archived:")
        lines += [local_comment(line) for line in local]
    top: dict[str, Any] = {"lock-version": "1.0"}
    if data["platform"] in PLATFORM_MARKERS:
        top["environments"] = [PLATFORM_MARKERS[data["platform"]]]
    if python:
        top["requires-python"] = "==" + ".".join(python.split(".")[:2]) + ".*"
    top["created-by"] = "condarchive"
    lines += [f"{k} = {_value(v)}" for k, v in top.items()]
    if not packages:
        lines.append("packages = []")
    for package in packages:
        lines += _package(package, urls)
    return "\n".join(lines) + "\n"
