"""`@EXPLICIT` files: one package URL per line, as `conda create --file` and micromamba read them.

Each URL carries its md5 as the fragment (`<url>#<md5>`): that is the one form every conda
(4.x onwards), mamba/micromamba and rattler version verifies. Newer clients also accept
`#sha256:<hex>`, older ones reject it, so the sha256 is carried instead as a comment line
directly above its URL (`# sha256: <hex>`), which every client skips and condarchive's own
importer reads back and verifies. Header comments name the lock, the target and its virtual
packages (`# condarchive-target:`, `# condarchive-virtual-packages:`), so importing the file
again yields the same lock id.

Lines are in dependency order (dependencies first), because an explicit install runs no
solver and links packages in file order.
"""

from __future__ import annotations

from app.lockfiles.base import Lock, select_target, topological

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
        "@EXPLICIT",
    ]
    for package in topological(data["packages"]):
        if package.get("sha256"):
            lines.append(f"# sha256: {package['sha256']}")
        lines.append(f"{package['url']}#{package['md5']}")
    return "\n".join(lines) + "\n"
