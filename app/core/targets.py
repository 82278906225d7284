"""Solve targets: a platform plus the virtual packages the solver may assume.

A bare platform gets the defaults below, conda-lock 4's (its default-virtual-packages):
glibc 2.28 and macOS 11.0, the oldest systems current conda-forge builds and current
manylinux/macOS wheels still target. (2.17 would make pandas or pyarrow wheels unusable
and send the PyPI part of a lock to building from source.)
A named target lists virtual packages that override (by name) or extend those defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import rattler

from app.errors import InputError

PLATFORMS = ("linux-64", "linux-aarch64", "linux-ppc64le", "osx-64", "osx-arm64", "win-64")

_ARCH = {
    "linux-64": "x86_64",
    "linux-aarch64": "aarch64",
    "linux-ppc64le": "ppc64le",
    "osx-64": "x86_64",
    "osx-arm64": "arm64",
    "win-64": "x86_64",
}

DEFAULT_VIRTUAL_PACKAGES: dict[str, tuple[str, ...]] = {
    "linux-64": ("__unix=0=0", "__linux=5.10=0", "__glibc=2.28=0"),
    "linux-aarch64": ("__unix=0=0", "__linux=5.10=0", "__glibc=2.28=0"),
    "linux-ppc64le": ("__unix=0=0", "__linux=5.10=0", "__glibc=2.28=0"),
    "osx-64": ("__unix=0=0", "__osx=11.0=0"),
    "osx-arm64": ("__unix=0=0", "__osx=11.0=0"),
    "win-64": ("__win=0=0",),
}
for _platform, _arch in _ARCH.items():
    DEFAULT_VIRTUAL_PACKAGES[_platform] += (f"__archspec=1={_arch}",)

_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CUDA_SHORTHAND = re.compile(r"^(?P<platform>.+)-cuda(?P<version>\d+(?:\.\d+)*)$")


@dataclass(frozen=True)
class Target:
    name: str
    platform: str
    virtual_packages: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "platform": self.platform,
            "virtual_packages": list(self.virtual_packages),
        }

    def rattler_virtual_packages(self) -> list[rattler.GenericVirtualPackage]:
        packages = []
        for entry in self.virtual_packages:
            name, version, build = entry.split("=", 2)
            packages.append(
                rattler.GenericVirtualPackage(
                    rattler.PackageName(name), rattler.Version(version), rattler.BuildString(build)
                )
            )
        return packages


def parse_virtual_package(text: str, loc: list[str | int]) -> str:
    """`__cuda=12.4`, `__cuda 12.4`, `__glibc=2.28=0` -> normalised `name=version=build`."""
    parts = [p for p in re.split(r"[=\s]+", text.strip()) if p]
    if not parts or not parts[0].startswith("__") or len(parts) > 3:
        raise InputError(loc, f"virtual package {text!r} must look like '__cuda=12.4'", text)
    name = parts[0]
    version = parts[1] if len(parts) > 1 else "0"
    build = parts[2] if len(parts) > 2 else "0"
    try:
        rattler.PackageName(name)
        version = str(rattler.Version(version))
        rattler.BuildString(build)  # checked here, or the worker fails on it after the 202
    except Exception as exc:  # rattler raises its own exception types
        raise InputError(loc, f"virtual package {text!r}: {exc}", text) from exc
    return f"{name}={version}={build}"


def _check_platform(platform: object, loc: list[str | int]) -> str:
    if platform not in PLATFORMS:
        raise InputError(
            loc, f"unknown platform {platform!r}; expected one of {', '.join(PLATFORMS)}", platform
        )
    return str(platform)


def _merge(platform: str, given: list[str]) -> tuple[str, ...]:
    merged = {entry.split("=", 1)[0]: entry for entry in DEFAULT_VIRTUAL_PACKAGES[platform]}
    for entry in given:
        merged[entry.split("=", 1)[0]] = entry
    return tuple(sorted(merged.values()))


def parse_target(raw: object, loc: list[str | int]) -> Target:
    """A platform string, the `<platform>-cuda<version>` shorthand, or a target object."""
    if isinstance(raw, str):
        shorthand = _CUDA_SHORTHAND.fullmatch(raw)  # not .match: `$` admits a final "\n"
        if shorthand and shorthand["platform"] in PLATFORMS:
            cuda = parse_virtual_package(f"__cuda={shorthand['version']}", loc)
            return Target(raw, shorthand["platform"], _merge(shorthand["platform"], [cuda]))
        platform = _check_platform(raw, loc)
        return Target(platform, platform, _merge(platform, []))
    if isinstance(raw, dict):
        unknown = set(raw) - {"name", "platform", "virtual_packages"}
        if unknown:
            raise InputError(loc, f"unknown target field(s): {', '.join(sorted(unknown))}")
        platform = _check_platform(raw.get("platform"), [*loc, "platform"])
        name = raw.get("name", platform)
        if not isinstance(name, str) or not _TARGET_NAME.fullmatch(name):
            raise InputError(
                [*loc, "name"], "target name must be 1-64 letters, digits, '.', '_' or '-'", name
            )
        given = raw.get("virtual_packages", [])
        if not isinstance(given, list):
            raise InputError([*loc, "virtual_packages"], "must be a list of strings", given)
        parsed = [
            parse_virtual_package(str(v), [*loc, "virtual_packages", i])
            for i, v in enumerate(given)
        ]
        return Target(name, platform, _merge(platform, parsed))
    raise InputError(loc, "a target is a platform string or an object with name and platform")


def parse_targets(raw: list[object], loc: list[str | int]) -> list[Target]:
    if not raw:
        raise InputError(loc, "at least one target is required")
    targets = [parse_target(item, [*loc, i]) for i, item in enumerate(raw)]
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(loc, f"duplicate target name(s): {', '.join(duplicates)}")
    return sorted(targets, key=lambda t: t.name)
