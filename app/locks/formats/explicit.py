"""`@EXPLICIT` files: one package URL per line, as `conda create --file` and micromamba read them.

Each URL carries its md5 as the fragment (`<url>#<md5>`): that is the one form every conda
(4.x onwards), mamba/micromamba and rattler version verifies. Newer clients also accept
`#sha256:<hex>`, older ones reject it, so the sha256 is carried instead as a comment line
directly above its URL (`# sha256: <hex>`), which every client skips and condarchive's own
importer reads back and verifies. Header comments name the lock, the target and its virtual
packages (`# condarchive-target:`, `# condarchive-virtual-packages:`), so importing the file
again yields the same lock id.

The file is conda-only: when the target also has PyPI packages, a comment says they are
in the lock's `requirements/{target}.txt` (pip cannot read an explicit file, nor conda
a wheel).

Lines are in dependency order (dependencies first), because an explicit install runs no
solver and links packages in file order.

Reading it back: `conda list --explicit --md5` files, one URL per line after `@EXPLICIT`.
`# platform:` (or the request's `platform`) names the target's platform; condarchive's
own `# condarchive-target:` / `# condarchive-virtual-packages:` comments and `# sha256:`
lines are read back, so an exported file imports as the same lock.
"""

from __future__ import annotations

import re

from app.locks.formats.base import Lock, pypi_local, pypi_packages, select_target, topological
from app.locks.formats.entries import (
    Entry,
    LineError,
    ParsedFile,
    check_url,
    make_target,
    subdir_of,
)

MEDIA_TYPE = "text/plain; charset=utf-8"


def render_explicit(lock: Lock, target: str | None) -> str:
    """The explicit file for one target of the lock."""
    name, data = select_target(lock, target)
    lines = [
        "# This file may be used to create an environment using:",
        "# $ conda create --name <env> --file <this file>",
        f"# platform: {data['platform']}",
        f"# condarchive-lock: {lock['id']}",
        f"# condarchive-target: {name}",
        f"# condarchive-virtual-packages: {' '.join(data['virtual_packages'])}".rstrip(),
    ]
    if pypi_packages(data) or pypi_local(data):
        lines += [
            f"# PyPI packages of this target ({len(pypi_packages(data))}) are not in this file:",
            f"#   /l/{lock['id']}/requirements/{name}.txt (pip install --require-hashes -r)",
        ]
    lines.append("@EXPLICIT")
    for package in topological(data["packages"]):
        if package.get("sha256"):
            lines.append(f"# sha256: {package['sha256']}")
        lines.append(f"{package['url']}#{package['md5']}")
    return "\n".join(lines) + "\n"


# --- reading ----------------------------------------------------------------------------


_MD5 = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _fragment_hashes(line: int, fragment: str) -> tuple[str | None, str | None]:
    """`<md5>`, `md5:<md5>`, `<sha256>` or `sha256:<sha256>` -> (md5, sha256)."""
    value = fragment.strip().lower()
    kind, _, digest = value.partition(":") if ":" in value else ("", "", value)
    if not value:
        return None, None
    if kind in ("", "md5") and _MD5.match(digest):
        return digest, None
    if kind in ("", "sha256") and _SHA256.match(digest):
        return None, digest
    raise LineError(line, f"'#{fragment}' is neither an md5 nor a sha256 digest", fragment)


def parse_explicit(text: str, platform: str | None = None) -> ParsedFile:
    """An explicit file: `# platform:` (or `platform`) names the target's platform."""
    declared: tuple[str, int] | None = None
    name: str | None = None
    vps: list[str] | None = None
    pending_sha256: str | None = None
    seen_explicit = False
    entries: list[Entry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].strip().partition(":")
            key, value = key.strip().lower(), value.strip()
            if not sep:
                continue
            if key == "platform":
                declared = (value, number)
            elif key == "condarchive-target":
                name = value
            elif key == "condarchive-virtual-packages":
                vps = value.split()
            elif key == "sha256" and _SHA256.match(value.lower()):
                pending_sha256 = value.lower()
            continue
        if line == "@EXPLICIT":
            seen_explicit = True
            continue
        if not seen_explicit:
            raise LineError(number, f"{line!r} comes before the @EXPLICIT line", line)
        url, _, fragment = line.partition("#")
        url = url.strip()
        check_url(number, url)
        md5, sha256 = _fragment_hashes(number, fragment)
        entries.append(Entry(number, url, md5, sha256 or pending_sha256))
        pending_sha256 = None
    if not entries:
        raise LineError(0, "the explicit file lists no package URLs")
    subdirs = {subdir_of(e.url) for e in entries} - {"noarch"}
    if platform is None and declared is not None:
        platform = declared[0]
    if platform is None:
        if len(subdirs) != 1:
            raise LineError(
                0,
                "cannot tell the platform: add a '# platform: linux-64' line or send 'platform'",
            )
        platform = subdirs.pop()
    for entry in entries:
        subdir = subdir_of(entry.url)
        if subdir not in ("noarch", platform):
            raise LineError(
                entry.line, f"package for {subdir} in a {platform} environment", entry.url
            )
    line = declared[1] if declared else 0
    return ParsedFile("explicit", (make_target(name, platform, vps, entries, line),), ())
