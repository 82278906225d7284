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
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from app.core.canonical import canonical_json


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
