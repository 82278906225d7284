"""Package filenames and subdirs from upstream, checked before they name anything.

A filename in repodata (the key of ``packages`` / ``packages.conda``) or at the end of an
imported URL is upstream's word. It ends up in locked URLs (``{channel}/{subdir}/{fn}``,
which ``..`` would move outside the channel), in archive channel paths, and in the
install's package cache. So every such name must be a plain file name ending in ``.conda``
or ``.tar.bz2`` -- no separators, no ``..``, nothing absolute -- before it is used. One
regex, used everywhere a filename comes in.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: conda's characters for names, versions (`+`, `!`) and builds, then the extension; no
#: `/`, `\\`, NUL, whitespace or leading dot. Not split into name-version-build: old
#: channels hold files such as `A_0.1.0.tar.bz2`, and safety needs only a plain name.
_FILENAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+!-]*\.(conda|tar\.bz2)")
_SUBDIR = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_FILENAME = 255


class BadFilename(ValueError):
    """A name that is not a conda package filename (or subdir); the message says which."""


def check_package_filename(filename: str) -> str:
    """Return `filename` if it is a plain conda package filename, else raise BadFilename."""
    if (
        not isinstance(filename, str)
        or len(filename) > MAX_FILENAME
        or ".." in filename
        or not _FILENAME.fullmatch(filename)
    ):
        raise BadFilename(
            f"{filename!r} is not a conda package filename "
            "(name-version-build.conda or .tar.bz2, with no path in it)"
        )
    return filename


def check_subdir(subdir: str) -> str:
    """Return `subdir` if it is a plain platform subdir name (linux-64, noarch...)."""
    if not isinstance(subdir, str) or not _SUBDIR.fullmatch(subdir):
        raise BadFilename(f"{subdir!r} is not a conda subdir name")
    return subdir


def is_package_filename(filename: str) -> bool:
    try:
        check_package_filename(filename)
    except BadFilename:
        return False
    return True


def upstream_record_problem(
    filename: str, subdir: str, url: str, allowed: list[str], channel_alias: str
) -> str | None:
    """What is wrong with where a repodata record says its file is, or None.

    Its filename and subdir must be plain names, and its URL (channel + subdir + filename,
    or the repodata's `base_url`) inside the allowlist: otherwise a channel could lock,
    and have the archive fetch, a file anywhere.
    """
    from app.core.channels import fetch_refusal

    try:
        check_package_filename(filename)
        check_subdir(subdir)
    except BadFilename as exc:
        return f"lists {exc}"
    directory, _, last = url.rpartition("/")
    if last == filename and _directory_allowed(directory, tuple(allowed), channel_alias):
        # A plain filename in an allowed directory is allowed: nothing of the check
        # depends on the last path segment once it is a plain name.
        return None
    refusal = fetch_refusal(url, allowed, channel_alias)
    return None if refusal is None else f"locates {filename} at {refusal}"


@lru_cache(maxsize=1024)
def _directory_allowed(directory: str, allowed: tuple[str, ...], channel_alias: str) -> bool:
    """Whether files in `directory` may be fetched: checked once per channel subdir instead
    of once per locked package (a few ms for a lock of a few hundred packages)."""
    from app.core.channels import fetch_refusal

    return fetch_refusal(directory, list(allowed), channel_alias) is None
