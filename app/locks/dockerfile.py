"""A container recipe for one target of a lock: micromamba installing from the archive.

The Dockerfile builds on a pinned micromamba image, fetches the target's explicit file
from this deployment's archive (``/l/<id>/explicit/<target>.txt?source=archive``: every
URL points at an archived copy and carries its md5, which micromamba checks on download),
creates the environment from it with no solver involved, cleans the package cache in the
same layer, then installs the target's PyPI part with ``pip --require-hashes --no-deps``
from the archived copies (``/l/<id>/requirements/<target>.txt?source=archive``), never
reaching PyPI itself (``--index-url`` is the archive's simple index).

The text depends on the lock, the target and the base URL only, so it is byte-stable.
Containers run Linux: only linux-64 and linux-aarch64 targets have a recipe
(:class:`NotLinux`). No Docker engine runs where this is written or tested, so the
recipe is checked by parsing, not by a build.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

#: The micromamba image; pinned by tag. Its digest is not written: it could not be
#: checked against the registry where this was written (no registry access), and a wrong
#: digest would make every build fail. Pin it with
#: ``docker buildx imagetools inspect mambaorg/micromamba:1.5.10``.
BASE_IMAGE = "mambaorg/micromamba:1.5.10"

#: conda subdir -> the OCI platform of the image that can run its packages.
OCI_PLATFORMS = {"linux-64": "linux/amd64", "linux-aarch64": "linux/arm64"}

#: glibc of the base image (Debian 12): a target that assumes a newer one will not run.
BASE_GLIBC = "2.36"

MEDIA_TYPE = "text/plain; charset=utf-8"


class NotLinux(ValueError):
    """The target's packages cannot run in a Linux container."""

    def __init__(self, target: str, platform: str, linux_targets: list[str]) -> None:
        others = (
            f"; this lock's Linux targets: {', '.join(linux_targets)}"
            if linux_targets
            else "; this lock has no Linux target"
        )
        super().__init__(
            f"target {target} is {platform}: a container runs Linux, so only a linux-64 or "
            f"linux-aarch64 target can be installed in one{others}"
        )
        self.linux_targets = linux_targets


class UnknownTarget(LookupError):
    def __init__(self, target: str, available: list[str]) -> None:
        super().__init__(f"this lock has no target {target!r}; it has: {', '.join(available)}")
        self.available = available


def linux_targets(lock: dict[str, Any]) -> list[str]:
    return sorted(n for n, t in lock["targets"].items() if t["platform"] in OCI_PLATFORMS)


def _label(value: str) -> str:
    """A double-quoted Dockerfile string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dockerfile(lock: dict[str, Any], target: str, base_url: str) -> str:
    """The Dockerfile of `target` of `lock` (a lock view), fetching from `base_url`."""
    if target not in lock["targets"]:
        raise UnknownTarget(target, sorted(lock["targets"]))
    data = lock["targets"][target]
    platform = data["platform"]
    if platform not in OCI_PLATFORMS:
        raise NotLinux(target, platform, linux_targets(lock))
    lock_id = lock["id"]
    permalink = f"{base_url}/l/{lock_id}"
    explicit = f"{permalink}/explicit/{quote(target)}.txt?source=archive"
    requirements = f"{permalink}/requirements/{quote(target)}.txt?source=archive"
    index = f"{base_url}/pypi/simple/"
    pypi = data.get("pypi_packages") or []
    virtual = data.get("virtual_packages") or []
    conda_names = {p["name"] for p in data.get("packages") or []}

    lines = [
        "# syntax=docker/dockerfile:1",
        f"# condarchive lock {lock_id}, target {target} ({platform})",
        f"# {permalink}",
        "#",
        f"# Build: docker build --platform {OCI_PLATFORMS[platform]} "
        f"-t lock-{lock_id[:12]}-{target} - < Dockerfile",
        "# Every package comes from the archive at the URL above, checked against its hash.",
        f"# {BASE_IMAGE} is pinned by tag only: its digest was not checked where this",
        "# recipe was written. Pin it with: docker buildx imagetools inspect " + BASE_IMAGE,
    ]
    if virtual:
        lines += [
            f"# The lock assumes: {' '.join(virtual)}",
            f"# (the base image has glibc {BASE_GLIBC}; __cuda needs the NVIDIA container runtime)",
        ]
    lines += [
        f"FROM --platform={OCI_PLATFORMS[platform]} {BASE_IMAGE}",
        "",
        f"LABEL org.opencontainers.image.source={_label(permalink)} \\",
        f"      org.opencontainers.image.description="
        f"{_label(f'condarchive lock {lock_id}, target {target}')} \\",
        f"      org.condarchive.lock={_label(lock_id)} \\",
        f"      org.condarchive.target={_label(target)}",
        "",
        "# The target's @EXPLICIT file: archive URLs, each with the md5 micromamba checks.",
        f"ADD --chown=$MAMBA_USER:$MAMBA_USER {explicit} /tmp/explicit.txt",
        "RUN micromamba create -y -n env -f /tmp/explicit.txt && \\",
        "    micromamba clean --all --yes",
    ]
    if pypi:
        pip = "micromamba run -n env python -m pip"
        lines += [
            "",
            f"# The {len(pypi)} PyPI package(s), from the archive, each checked by its sha256.",
        ]
        if "pip" not in conda_names:
            lines += [
                "# pip is no package of this lock: bootstrap the one python ships.",
                "RUN micromamba run -n env python -m ensurepip --default-pip",
            ]
        lines += [
            f"RUN {pip} install --no-deps --require-hashes --no-cache-dir \\",
            f"    --index-url {index} \\",
            f'    -r "{requirements}"',
        ]
    for line in data.get("pypi_local") or []:
        lines.append(f"# Not archived, install by hand: {line}")
    lines += [
        "",
        "# The image's entrypoint activates this environment.",
        "ENV ENV_NAME=env",
    ]
    return "\n".join(lines) + "\n"
