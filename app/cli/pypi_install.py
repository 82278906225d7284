"""The PyPI part of `condarchive install`: the target's PyPI files, from the archive only,
installed into the new prefix after its conda part.

Each file is downloaded from its archive URL (``/pypi/files/{sha256}/{filename}``, with
the server's token when it needs one) and checked against the lock's sha256 and size;
then uv installs exactly those files (``--no-index --find-links`` on the checked files,
``--require-hashes --no-deps``, pinned ``name==version``), so nothing comes from an index
and nothing unlocked is pulled in. uv installs with ``--target`` into the prefix's
site-packages for the target's Python version and platform, so no interpreter from the
prefix has to run (a prefix may be prepared for another machine, and the staging
directory is not where its Python expects to live); console scripts land in the prefix's
``bin`` (``Scripts`` on Windows) with the final prefix's Python in their shebang.

Local lines (``-e .`` and the like: the researcher's own code) are not archived; each is
printed as a warning.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: uv's ``--python-platform`` per conda platform. Install takes the files the lock chose
#: for the target, so the most permissive level of each platform family is right here.
PYTHON_PLATFORMS = {
    "linux-64": ("x86_64-manylinux_2_40", {}),
    "linux-aarch64": ("aarch64-manylinux_2_40", {}),
    "osx-64": ("x86_64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "15.0"}),
    "osx-arm64": ("aarch64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "15.0"}),
    "win-64": ("x86_64-pc-windows-msvc", {}),
}


class PyPIInstallFailed(Exception):
    """The PyPI part could not be installed (nothing of the new prefix is kept)."""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pypi_missing(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The target's PyPI files that are not in the archive."""
    return [s for s in states if s["state"] != "archived" or not s.get("archive_url")]


def python_version(packages: list[dict[str, Any]]) -> str:
    """``X.Y`` of the conda ``python`` the target installs."""
    for package in packages:
        if package["name"] == "python":
            return ".".join(package["version"].split(".")[:2])
    raise PyPIInstallFailed("the target has PyPI packages but no conda python to install them for")


def site_packages(prefix: Path, platform: str, version: str) -> Path:
    if platform.startswith("win-"):
        return prefix / "Lib" / "site-packages"
    return prefix / "lib" / f"python{version}" / "site-packages"


def _download(
    client: Any, state: dict[str, Any], locked: dict[str, Any], server: str, into: Path
) -> Path:
    """The archived file, checked against the lock's sha256 and size before it is used."""
    from app.auth.client import auth_headers_for

    filename = locked["filename"]
    if "/" in filename or "\\" in filename or filename.startswith("."):
        raise PyPIInstallFailed(f"refusing a PyPI file name with a path in it: {filename!r}")
    url = state["archive_url"]
    path = into / filename
    digest, size = hashlib.sha256(), 0
    with client.stream("GET", url, headers=auth_headers_for(url, server)) as response:
        if response.status_code != 200:
            raise PyPIInstallFailed(f"{url}: the archive answered HTTP {response.status_code}")
        with path.open("wb") as out:
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    if digest.hexdigest() != locked["sha256"] or (locked.get("size") and size != locked["size"]):
        raise PyPIInstallFailed(
            f"{url}: archive served sha256 {digest.hexdigest()} ({size} bytes), "
            f"the lock says {locked['sha256']} ({locked.get('size')} bytes)"
        )
    return path


def install_pypi(
    staging: Path,
    prefix: Path,
    platform: str,
    conda_packages: list[dict[str, Any]],
    pypi_packages: list[dict[str, Any]],
    states: list[dict[str, Any]],
    server: str,
) -> None:
    """Install the target's PyPI files, downloaded from the archive and checked against
    the lock, into `staging` (which becomes `prefix`)."""
    import httpx

    if not pypi_packages:
        return
    by_url = {s["url"]: s for s in states}
    with tempfile.TemporaryDirectory(prefix="condarchive-pypi-") as tmp:
        files = Path(tmp) / "files"
        files.mkdir()
        with httpx.Client(timeout=60, follow_redirects=True) as client:
            for package in pypi_packages:
                state = by_url.get(package["url"])
                if state is None or not state.get("archive_url"):
                    raise PyPIInstallFailed(f"{package['filename']} is not in the archive")
                _download(client, state, package, server, files)
        install_pypi_files(staging, prefix, platform, conda_packages, pypi_packages, files)


def install_pypi_files(
    staging: Path,
    prefix: Path,
    platform: str,
    conda_packages: list[dict[str, Any]],
    pypi_packages: list[dict[str, Any]],
    files: Path,
) -> None:
    """Install the PyPI files in `files` (already checked against the lock) into
    `staging` with uv: no index, no dependencies, every file's sha256 required."""
    from uv import find_uv_bin

    if not pypi_packages:
        return
    if platform not in PYTHON_PLATFORMS:
        raise PyPIInstallFailed(f"cannot install PyPI packages for {platform}")
    version = python_version(conda_packages)
    uv_platform, platform_env = PYTHON_PLATFORMS[platform]
    target = site_packages(staging, platform, version)
    with tempfile.TemporaryDirectory(prefix="condarchive-pypi-") as tmp:
        lines = [
            f"{package['name']}=={package['version']} --hash=sha256:{package['sha256']}"
            for package in pypi_packages
        ]
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("\n".join(lines) + "\n")
        command = [
            find_uv_bin(),
            "pip",
            "install",
            "--no-config",
            "--no-index",
            "--find-links",
            str(files),
            "--require-hashes",
            "--no-deps",
            "--target",
            str(target),
            "--python",
            sys.executable,  # only for uv to run; the tags are the target's
            "--python-version",
            version,
            "--python-platform",
            uv_platform,
            "--no-python-downloads",
            "--link-mode",
            "copy",
            "--cache-dir",
            str(Path(tmp) / "cache"),
            "-r",
            str(requirements),
        ]
        environ = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": tmp,
            **platform_env,
        }
        for key in ("SSL_CERT_FILE", "SSL_CERT_DIR", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP"):
            if key in os.environ:
                environ[key] = os.environ[key]
        done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise PyPIInstallFailed(f"uv could not install the PyPI part: {done.stderr.strip()}")
    (target / ".lock").unlink(missing_ok=True)
    _move_scripts(target, staging, prefix, platform)
    problems = pypi_problems(target, pypi_packages)
    if problems:
        raise PyPIInstallFailed("; ".join(problems))


def _move_scripts(target: Path, staging: Path, prefix: Path, platform: str) -> None:
    """uv puts console scripts in ``<target>/bin``; they belong in the prefix's, run by
    the prefix's Python."""
    windows = platform.startswith("win-")
    scripts = next((target / d for d in ("bin", "Scripts") if (target / d).is_dir()), None)
    if scripts is None:
        return
    destination = staging / ("Scripts" if windows else "bin")
    destination.mkdir(parents=True, exist_ok=True)
    python = prefix / ("python.exe" if windows else "bin/python")
    for script in scripts.iterdir():
        moved = destination / script.name
        shutil.move(str(script), moved)
        if windows or not moved.is_file():
            continue
        data = moved.read_bytes()
        if data.startswith(b"#!") and b"python" in data.split(b"\n", 1)[0]:
            rest = data.split(b"\n", 1)[1] if b"\n" in data else b""
            moved.write_bytes(f"#!{python}\n".encode() + rest)
    shutil.rmtree(scripts, ignore_errors=True)


def pypi_problems(target: Path, packages: list[dict[str, Any]]) -> list[str]:
    """Every locked PyPI package has its .dist-info (else which have not)."""
    installed = set()
    if target.is_dir():
        for entry in target.glob("*.dist-info"):
            name, _, version = entry.name.removesuffix(".dist-info").rpartition("-")
            installed.add((normalize(name), _version(version)))
    return [
        f"PyPI package {p['name']}=={p['version']} is not installed"
        for p in packages
        if (normalize(p["name"]), _version(p["version"])) not in installed
    ]


def _version(text: str) -> str:
    """PEP 440 normal form (``1.0`` and ``1.00`` name one version), or the text as is."""
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(text))
    except InvalidVersion:
        return text


def warn_local(lines: list[str]) -> None:
    for line in lines:
        print(f"not installed: local code: {line}", file=sys.stderr)
