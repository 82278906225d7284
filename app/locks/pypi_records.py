"""One locked PyPI package: the one file a target installs, and where it came from.

Part of the lock's canonical form (app/locks/store.py) as :meth:`LockedPyPIPackage.canonical`:

    {"name", "version", "kind": "index" | "url" | "vcs", "url", "filename", "sha256",
     "size", "requires_python", "requires": [requirement lines], "index": <index URL> | null,
     "vcs": {"type", "url", "requested_revision", "commit"} | null}

``name`` is the canonical PyPI name (PEP 503). For a VCS requirement the file is the
source archive condarchive made of the commit while locking (``git archive``, gzipped
reproducibly, stored in the blob store under its sha256): ``url`` is
``git+<repository>@<commit>``, ``filename`` ``<dist>-<version>.tar.gz``, and ``vcs`` says
what was asked and what it resolved to.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from packaging.version import InvalidVersion, Version

from app.core.canonical import canonical_json

#: A PEP 503 normalised name.
_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
#: A distribution file's name: plain (it becomes a path in the archive, a bundle and an
#: install), and a wheel or an sdist.
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*\.(?:whl|tar\.gz|zip|tar\.bz2|tgz)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: A version as an index writes it (not always normalised: `1.0.0-rc1`), with no space,
#: line break or other character a requirements line could be split on.
_SAFE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")


def is_plain_filename(filename: str) -> bool:
    """A wheel or sdist name that is safe as a path component and a requirements token."""
    return bool(_FILENAME.match(filename))


class InvalidPyPIPackage(ValueError):
    """A PyPI package whose name, version, filename or hash could not have come from an
    index: from a hostile lockfile, it would reach a requirements file or a path."""


@dataclass(frozen=True)
class LockedPyPIPackage:
    name: str
    version: str
    url: str
    filename: str
    sha256: str
    size: int
    requires_python: str | None = None
    requires: tuple[str, ...] = ()
    kind: str = "index"  # index | url | vcs
    index: str | None = None
    vcs: dict[str, str] | None = None

    def __post_init__(self) -> None:
        # Each of these is written into requirements files (`name==version --hash=…`),
        # tar member names and install paths: none may carry a line break or a path.
        if not _NAME.match(self.name):
            raise InvalidPyPIPackage(f"{self.name!r} is not a normalised PyPI name")
        try:
            if str(Version(self.version)) != self.version and not _SAFE_VERSION.match(self.version):
                raise InvalidVersion(self.version)
        except InvalidVersion:
            raise InvalidPyPIPackage(
                f"{self.name}: {self.version!r} is not a PEP 440 version"
            ) from None
        if not _FILENAME.match(self.filename):
            raise InvalidPyPIPackage(f"{self.name}: {self.filename!r} is not a plain file name")
        if not _SHA256.match(self.sha256):
            raise InvalidPyPIPackage(f"{self.name}: {self.sha256!r} is not a sha256")

    def canonical(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "url": self.url,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "requires_python": self.requires_python,
            "requires": list(self.requires),
            "index": self.index,
            "vcs": dict(self.vcs) if self.vcs else None,
        }

    def view(self) -> dict[str, Any]:
        """What the API, pages and lockfiles show: the canonical fields."""
        return self.canonical()

    @classmethod
    def from_canonical(cls, data: dict[str, Any]) -> LockedPyPIPackage:
        return cls(
            name=data["name"],
            version=data["version"],
            url=data["url"],
            filename=data["filename"],
            sha256=data["sha256"],
            size=int(data["size"]),
            requires_python=data.get("requires_python"),
            requires=tuple(data.get("requires") or ()),
            kind=data.get("kind") or "index",
            index=data.get("index"),
            vcs=dict(data["vcs"]) if data.get("vcs") else None,
        )

    @cached_property
    def canonical_text(self) -> str:
        return canonical_json(self.canonical())

    @cached_property
    def record_key(self) -> str:
        """The sha256 of :meth:`canonical`: what names its row (written once)."""
        return hashlib.sha256(self.canonical_text.encode()).hexdigest()

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")
