"""The `pip:` list of an environment.yml, read line by line as pip reads a requirements file.

Each line becomes one :class:`PipLine` of a kind that says what the service can do with it:

* ``index``: a PEP 508 requirement (``name==1.2``, ``name>=1,<2``, ``name[extra]``, with an
  environment marker or not) that a resolver looks up in the chosen indexes;
* ``url``: a direct reference (``name @ https://host/pkg-1.0.tar.gz``), fetched and hashed
  like an index file when its host is allowed;
* ``vcs``: ``git+https://host/org/repo.git@ref#egg=name`` (editable or not, or as
  ``name @ git+…``), resolved to an exact commit and archived as a source archive;
* ``local``: the researcher's own code (``-e .``, ``./path``, ``-r requirements.txt``,
  ``file:`` URLs), which no server can fetch: recorded as "local, not archived".

Index options inside the list (``--index-url``/``-i``, ``--extra-index-url``) choose the
indexes. Any other option is refused, naming the line: silently dropping ``--pre`` or
``--no-binary`` would lock something other than what the file asks for.

Nothing here touches the network or the allowlists; the caller checks the URLs it gets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from app.errors import InputError

Kind = Literal["index", "url", "vcs", "local"]

#: The VCS schemes pip knows, as the prefix of a URL (`git+https://…`).
VCS_SCHEMES = ("git", "hg", "svn", "bzr")
_INDEX_OPTIONS = {"--index-url": "index", "-i": "index", "--extra-index-url": "extra"}
#: Lines that name another requirements file, which only the researcher has.
_FILE_OPTIONS = ("-r ", "--requirement ", "--requirement=", "-c ", "--constraint ", "--constraint=")
_EGG = re.compile(r"(?:^|&)egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
_SUBDIRECTORY = re.compile(r"(?:^|&)subdirectory=([^&]+)")
#: What no pip line may hold: uv reads the lines as a requirements file.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")


@dataclass(frozen=True)
class VcsRef:
    """A repository and the revision asked for (None: the default branch)."""

    vcs: str  # git | hg | svn | bzr
    url: str  # the repository URL without the `git+` prefix, the `@ref` and the fragment
    ref: str | None
    subdirectory: str | None = None  # `#subdirectory=`: the project inside the repository


@dataclass(frozen=True)
class PipLine:
    """One requirement of the `pip:` list, as written and as understood."""

    kind: Kind
    text: str  # the line as written (for the lock page and error messages)
    name: str | None  # canonical PyPI name, where the line names one
    requirement: str | None  # the PEP 508 form a resolver is given (index and url kinds)
    url: str | None = None  # a direct reference's URL
    vcs: VcsRef | None = None
    editable: bool = False


@dataclass(frozen=True)
class PipSection:
    """The whole `pip:` list: its requirements and the indexes it chose (None: default)."""

    lines: tuple[PipLine, ...]
    index_url: str | None
    extra_index_urls: tuple[str, ...]

    @property
    def resolvable(self) -> tuple[PipLine, ...]:
        """The lines a server can lock (everything but the researcher's local code)."""
        return tuple(line for line in self.lines if line.kind != "local")


def parse_pip_section(items: object, loc: list[str | int]) -> PipSection:
    """Read a `pip:` list; an `InputError` names the item (``loc + [i]``) and what is wrong."""
    if not isinstance(items, list):
        raise InputError(loc, "the pip section must be a list of requirement lines")
    lines: list[PipLine] = []
    index_url: str | None = None
    extras: list[str] = []
    for i, item in enumerate(items):
        where = [*loc, i]
        if not isinstance(item, str) or not item.strip():
            raise InputError(where, f"a pip requirement must be a non-empty string, not {item!r}")
        text = item.strip()
        if _CONTROL.search(text):
            # uv reads the requirements as a file: a line break would smuggle in a line
            # of its own (`-r /etc/passwd`, `--find-links`), which no check here saw.
            raise InputError(where, f"{text!r}: a pip line cannot hold line breaks or NUL")
        try:
            option = _index_option(text, where)
            if option is None:
                lines.append(parse_pip_line(text, where))
                continue
        except InputError:
            raise
        except ValueError as exc:  # urlsplit: "Invalid IPv6 URL" and the like
            raise InputError(where, f"{text!r} is not a requirement pip can read: {exc}") from exc
        which, url = option
        if which == "index":
            if index_url is not None and index_url != url:
                raise InputError(where, f"a second --index-url ({url}); pip takes only one")
            index_url = url
        elif url not in extras:
            extras.append(url)
    return PipSection(tuple(lines), index_url, tuple(extras))


def _index_option(text: str, where: list[str | int]) -> tuple[str, str] | None:
    """(`index` | `extra`, URL) for an index option line, None for a requirement line."""
    if not text.startswith("-"):
        return None
    flag, _, rest = text.partition("=") if text.startswith("--") else (text, "", "")
    if not rest:
        flag, _, rest = text.partition(" ")
    flag, value = flag.strip(), rest.strip()
    if flag in ("-e", "--editable", "-r", "--requirement", "-c", "--constraint"):
        return None
    if flag not in _INDEX_OPTIONS:
        raise InputError(
            where,
            f"{text!r}: only --index-url, -i and --extra-index-url can be given in the pip "
            "section (other options would change what is installed without being locked)",
        )
    if not value:
        raise InputError(where, f"{text!r} names no URL")
    if urlsplit(value).scheme not in ("http", "https"):
        raise InputError(where, f"{text!r}: an index must be an http(s) URL")
    return _INDEX_OPTIONS[flag], value.rstrip("/")


def parse_pip_line(text: str, where: list[str | int]) -> PipLine:
    """One requirement line (no index options)."""
    editable = False
    body = text
    for flag in ("-e ", "--editable ", "--editable="):
        if body.startswith(flag):
            editable, body = True, body[len(flag) :].strip()
            break
    if body.startswith(_FILE_OPTIONS):  # another requirements file: the researcher's own
        return PipLine("local", text, None, None)
    if _is_local_path(body):
        return PipLine("local", text, None, None, editable=editable)
    vcs = _vcs_of(body)
    if vcs is not None:
        return _vcs_line(text, body, vcs, editable, where)
    if editable:
        raise InputError(where, f"{text!r}: -e needs a local path or a VCS URL")
    if " -" in body:
        raise InputError(
            where,
            f"{text!r}: per-requirement options (such as --hash) are not supported; the lock "
            "records every file's sha256 itself",
        )
    try:
        requirement = Requirement(body)
    except InvalidRequirement as exc:
        raise InputError(where, f"{text!r} is not a requirement pip can read: {exc}") from exc
    name = canonicalize_name(requirement.name)
    if requirement.url is None:
        return PipLine("index", text, name, str(requirement))
    url = requirement.url
    if url.startswith("file:"):
        return PipLine("local", text, name, None, url=url)
    vcs = _vcs_of(url)
    if vcs is not None:
        line = _vcs_line(text, url, vcs, False, where)
        return PipLine("vcs", text, name, str(requirement), vcs=line.vcs)
    if urlsplit(url).scheme not in ("http", "https"):
        raise InputError(where, f"{text!r}: a direct reference must be an http(s) URL")
    return PipLine("url", text, name, str(requirement), url=url)


def _is_local_path(body: str) -> bool:
    """`.`, `./x`, `../x`, `/abs`, `~/x`, `C:\\x`, `file:…`: the researcher's own files."""
    return (
        body in (".", "..")
        or body.startswith(("./", "../", "/", "~", ".\\", "..\\", "file:"))
        or re.match(r"^[A-Za-z]:[\\/]", body) is not None
    )


def _vcs_of(url: str) -> str | None:
    scheme = urlsplit(url).scheme.lower()
    vcs, plus, _ = scheme.partition("+")
    return vcs if plus and vcs in VCS_SCHEMES else None


def _vcs_line(text: str, url: str, vcs: str, editable: bool, where: list[str | int]) -> PipLine:
    """`git+https://host/repo.git@ref#egg=name` -> the repository, the ref, the name."""
    bare, _, fragment = url.partition("#")
    transport = bare.split("+", 1)[1]
    parts = urlsplit(transport)
    if parts.scheme not in ("https", "http", "ssh"):
        raise InputError(where, f"{text!r}: a VCS URL must use https (or ssh), not {parts.scheme}")
    path, ref = parts.path, None
    if "@" in path:
        path, _, ref = path.rpartition("@")
    repository = parts._replace(path=path, query="", fragment="").geturl()
    egg = _EGG.search(fragment)
    name = canonicalize_name(egg.group(1)) if egg else None
    found = _SUBDIRECTORY.search(fragment)
    subdirectory = found.group(1).strip("/") if found else None
    if subdirectory and (
        not _PLAIN_PATH.match(subdirectory)
        or any(part in (".", "..") for part in subdirectory.split("/"))
    ):
        raise InputError(where, f"{text!r}: subdirectory must be a plain relative path")
    ref_of = VcsRef(vcs, repository, ref or None, subdirectory)
    return PipLine("vcs", text, name, None, vcs=ref_of, editable=editable)
