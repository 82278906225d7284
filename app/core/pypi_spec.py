"""The PyPI part of an environment spec: what uv is asked, from which indexes, and what is
the researcher's own code.

Built from an environment.yml's ``- pip:`` list or the JSON ``pypi_dependencies`` and
``pypi_indexes`` fields (:func:`build_pypi_spec`), after every URL in it has passed the
allowlists: indexes and direct URLs ``CONDARCHIVE_ALLOWED_PYPI_INDEXES``, VCS repositories
``CONDARCHIVE_ALLOWED_VCS``.

Canonical form (inside the spec's, only when there is a PyPI part, so specs without one
keep their hashes)::

    {"requirements": [what uv is given, sorted, unique],
     "indexes": [the index, then extra indexes, in the order given],
     "local": [local lines as written, in the order given]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from app.core.channels import fetch_refusal
from app.core.pypi_requirements import PipLine, PipSection, parse_pip_section
from app.errors import InputError

if TYPE_CHECKING:
    from app.config import Settings

INDEX_SETTING = "CONDARCHIVE_ALLOWED_PYPI_INDEXES"
VCS_SETTING = "CONDARCHIVE_ALLOWED_VCS"


@dataclass(frozen=True)
class PyPISpec:
    requirements: tuple[str, ...]
    indexes: tuple[str, ...]
    local: tuple[str, ...]

    def canonical(self) -> dict[str, Any]:
        return {
            "requirements": list(self.requirements),
            "indexes": list(self.indexes),
            "local": list(self.local),
        }

    @classmethod
    def from_canonical(cls, data: dict[str, Any]) -> PyPISpec:
        return cls(
            tuple(data.get("requirements") or ()),
            tuple(data.get("indexes") or ()),
            tuple(data.get("local") or ()),
        )


@dataclass(frozen=True)
class PyPIPolicy:
    """What a request may name: allowlist entries, and the index used when none is given."""

    allowed_indexes: list[str]
    allowed_vcs: list[str]
    default_index: str

    @classmethod
    def of(cls, settings: Settings) -> PyPIPolicy:
        """The policy the settings set (CONDARCHIVE_ALLOWED_PYPI_INDEXES and friends)."""
        return cls(
            settings.allowed_pypi_entries,
            settings.allowed_vcs_entries,
            settings.default_pypi_index,
        )


def index_refusal(url: str, policy: PyPIPolicy) -> str | None:
    """Why an index or a file URL may not be fetched, or None."""
    return fetch_refusal(url, policy.allowed_indexes, "https://invalid.invalid", INDEX_SETTING)


def vcs_refusal(url: str, policy: PyPIPolicy) -> str | None:
    """Why a VCS repository may not be fetched, or None. An entry is a host (``github.com``,
    ``127.0.0.1:8000``: any repository there) or a URL prefix."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return f"{url} carries credentials"
    if parts.scheme not in ("https", "http"):
        return f"{url}: only http(s) repositories can be fetched, not {parts.scheme}"
    hosts = {entry.lower() for entry in policy.allowed_vcs if "://" not in entry}
    if (parts.hostname or "").lower() in hosts or parts.netloc.lower() in hosts:
        return None
    prefixes = [entry for entry in policy.allowed_vcs if "://" in entry]
    if prefixes and fetch_refusal(url, prefixes, "https://invalid.invalid", VCS_SETTING) is None:
        return None
    return f"{parts.hostname} is not in {VCS_SETTING}"


def uv_requirement(line: PipLine) -> str:
    """The line as uv is given it (a VCS line non-editable, pinned only as asked)."""
    if line.kind == "vcs" and line.vcs is not None:
        ref = f"@{line.vcs.ref}" if line.vcs.ref else ""
        url = f"{line.vcs.vcs}+{line.vcs.url}{ref}"
        if line.vcs.subdirectory:
            url += f"#subdirectory={line.vcs.subdirectory}"
        return f"{line.name} @ {url}" if line.name else url
    assert line.requirement is not None
    return line.requirement


def build_pypi_spec(
    section: PipSection | None,
    indexes: list[Any] | None,
    policy: PyPIPolicy,
    loc: list[str | int],
    index_loc: list[str | int],
) -> PyPISpec | None:
    """Check a parsed pip section (and the JSON `pypi_indexes`) against the allowlists.

    `loc` is where the section's items are (errors quote the line), `index_loc` where
    ``pypi_indexes`` is. None when there is no PyPI part at all.
    """
    if section is None and not indexes:
        return None
    chosen: list[str] = []
    if indexes is not None:
        if not isinstance(indexes, list) or not all(isinstance(i, str) for i in indexes):
            raise InputError(index_loc, "pypi_indexes must be a list of index URLs")
        for i, url in enumerate(indexes):
            try:
                scheme = urlsplit(url).scheme
            except ValueError as exc:  # "Invalid IPv6 URL" and the like
                raise InputError([*index_loc, i], f"{url!r} is not a URL: {exc}") from exc
            if scheme not in ("http", "https") or any(ord(c) < 32 for c in url):
                raise InputError([*index_loc, i], f"{url!r}: an index must be an http(s) URL")
            chosen.append(url.strip().rstrip("/"))
    if section is not None:
        if section.index_url and section.index_url not in chosen:
            chosen.insert(0, section.index_url)
        chosen += [url for url in section.extra_index_urls if url not in chosen]
    if not chosen:
        chosen = [policy.default_index.rstrip("/")]
    for i, url in enumerate(chosen):
        if (reason := index_refusal(url, policy)) is not None:
            where = [*index_loc, i] if indexes and url in indexes else loc
            raise InputError(where, f"PyPI index refused: {reason}", url)
    lines = section.lines if section is not None else ()
    requirements: set[str] = set()
    local: list[str] = []
    for line in lines:  # errors name the list and quote the line
        if line.kind == "local":
            local.append(line.text)
            continue
        if line.kind == "url" and line.url and (reason := index_refusal(line.url, policy)):
            raise InputError(loc, f"{line.text!r} refused: {reason}", line.text)
        if line.kind == "vcs" and line.vcs and (reason := vcs_refusal(line.vcs.url, policy)):
            raise InputError(loc, f"{line.text!r} refused: {reason}", line.text)
        requirements.add(uv_requirement(line))
    return PyPISpec(tuple(sorted(requirements)), tuple(chosen), tuple(local))


def parse_pypi_dependencies(items: object, loc: list[str | int]) -> PipSection:
    """The JSON ``pypi_dependencies`` list: the same lines a ``pip:`` list takes."""
    return parse_pip_section(items, loc)
