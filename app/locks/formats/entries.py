"""What every importer produces: entries (line, url, hashes) grouped into targets.

Each entry keeps the line it came from, so a later refusal (an unknown URL, a hash the
channel disagrees with) can name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from app.core.filenames import BadFilename, check_package_filename, check_subdir
from app.core.targets import parse_target, parse_virtual_package
from app.errors import InputError

LOC: list[str | int] = ["body", "content"]
_ARCHIVE = (".conda", ".tar.bz2")


class LineError(InputError):
    """Bad input at a line of the submitted file; `line` is 1-based (0 when not one line)."""

    def __init__(self, line: int, msg: str, value: object = None) -> None:
        super().__init__(LOC, f"line {line}: {msg}" if line else msg, value)
        self.line = line

    def to_detail(self) -> dict[str, object]:
        detail = super().to_detail()
        if self.line:
            detail["line"] = self.line
        return detail


@dataclass(frozen=True)
class Entry:
    line: int
    url: str
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class PyPIEntry:
    """One PyPI file of a target as the file states it; the index is asked for the rest.

    `requires` and `requires_python` are what the file says (pixi.lock carries them,
    conda-lock.yml does not); the importer prefers the file's core metadata (PEP 658).
    `index` is the index the file names for it, if any.
    """

    line: int
    name: str
    version: str
    url: str
    sha256: str | None
    requires: tuple[str, ...] | None = None
    requires_python: str | None = None
    index: str | None = None


@dataclass(frozen=True)
class ParsedTarget:
    name: str
    platform: str
    virtual_packages: tuple[str, ...]
    entries: tuple[Entry, ...]
    pypi_entries: tuple[PyPIEntry, ...] = ()


@dataclass(frozen=True)
class ParsedFile:
    format: str
    targets: tuple[ParsedTarget, ...]
    channels: tuple[str, ...]  # as the file declares them (names or URLs), may be empty
    pypi_indexes: tuple[str, ...] = ()  # PyPI indexes the file declares, in its order


def check_url(line: int, url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise LineError(line, f"{url!r} is not an http(s) package URL", url)
    if not url.endswith(_ARCHIVE):
        raise LineError(line, f"{url!r} is not a .conda or .tar.bz2 package URL", url)
    path = unquote(urlsplit(url).path).replace("\\", "/")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise LineError(line, f"{url!r} has '.' or '..' in its path", url)
    parts = url.split("#", 1)[0].rsplit("/", 2)
    try:  # the filename and subdir become paths in the archive: plain names only
        check_package_filename(parts[-1])
        check_subdir(parts[-2] if len(parts) == 3 else "")
    except BadFilename as exc:
        raise LineError(line, f"{url!r}: {exc}", url) from exc


def subdir_of(url: str) -> str:
    return url.rsplit("/", 2)[-2]


def make_target(
    name: str | None,
    platform: str,
    vps: list[str] | None,
    entries: list[Entry],
    line: int,
    pypi_entries: list[PyPIEntry] | None = None,
) -> ParsedTarget:
    """Validate the target the file names (or one named after its platform).

    Virtual packages are kept exactly as the file states them (none if it states none):
    an import asserts only what the file says, unlike a solve, which adds defaults.
    """
    try:
        target = parse_target({"name": name or platform, "platform": platform}, LOC)
        parsed = sorted({parse_virtual_package(v, LOC) for v in vps or []})
    except InputError as exc:
        raise LineError(line, exc.msg, exc.value) from exc
    return ParsedTarget(
        target.name, target.platform, tuple(parsed), tuple(entries), tuple(pypi_entries or ())
    )


def check_pypi_url(line: int, url: str) -> None:
    """A PyPI file URL: http(s), a wheel or an sdist, no '.' or '..' segments."""
    if not url.startswith(("http://", "https://")):
        raise LineError(line, f"{url!r} is not an http(s) PyPI file URL", url)
    path = unquote(urlsplit(url).path)
    if any(segment in (".", "..") for segment in path.replace("\\", "/").split("/")):
        raise LineError(line, f"{url!r} has '.' or '..' in its path", url)
    if not path.endswith((".whl", ".tar.gz", ".zip")):
        raise LineError(line, f"{url!r} is not a wheel or sdist URL", url)
