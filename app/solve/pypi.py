"""PyPI requirements in, one file per package out, for one target, with uv.

Run after the conda solve, per target: the conda solution fixes the Python version and
the packages conda already installs, and the target fixes the platform. uv (the binary
of the ``uv`` wheel) runs as a subprocess, ``uv pip compile --format pylock.toml``: with
``--python-platform`` it lists exactly the files that target installs, with URL, sha256,
size and upload time, and that output is read with :mod:`tomllib`.

Build code is untrusted. To read an sdist's dependencies uv may run its build backend,
that is, code chosen by whoever sent the request, so uv runs with an environment built
from nothing (no CONDARCHIVE_* variable, database or broker URL, token or proxy of this
process), HOME and TMPDIR in a throwaway directory that is also its working directory,
in its own process group, which is killed at the deadline.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from uv import find_uv_bin

from app.core.canonical import format_time
from app.core.targets import Target

FailureKind = Literal["unsatisfiable", "index", "timeout", "build", "platform", "resolver"]

#: glibc when a linux target names none, and macOS when an osx target names none: what
#: conda-lock 4 assumes (its default-virtual-packages.yaml), the oldest systems current
#: wheels of pandas or pyarrow still target.
DEFAULT_GLIBC = "2.28"
DEFAULT_OSX = "11.0"

#: The manylinux levels uv's ``--python-platform`` names (``uv pip compile --help``).
#: A glibc between two of them gets the lower one: uv offers no ``manylinux_2_29``.
UV_MANYLINUX = ((2, 17), (2, 28), *((2, minor) for minor in range(31, 41)))

_LINUX_ARCH = {"linux-64": "x86_64", "linux-aarch64": "aarch64"}
_DARWIN = {"osx-64": "x86_64-apple-darwin", "osx-arm64": "aarch64-apple-darwin"}
_WINDOWS = {"win-64": "x86_64-pc-windows-msvc"}

#: What git (run by uv for VCS requirements, and by app/solve/pypi_vcs.py) sees besides
#: the proxy: no system or user configuration, no prompt for credentials, and only http(s)
#: transports, plus local paths where git is run directly (uv clones its own cache with
#: them), never from a submodule (git marks those GIT_PROTOCOL_FROM_USER=0), so a
#: submodule or a redirect cannot reach ``file://``, ``ssh://`` or ``ext::``.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_COUNT": "4",
    "GIT_CONFIG_KEY_0": "protocol.allow",
    "GIT_CONFIG_VALUE_0": "never",
    "GIT_CONFIG_KEY_1": "protocol.http.allow",
    "GIT_CONFIG_VALUE_1": "always",
    "GIT_CONFIG_KEY_2": "protocol.https.allow",
    "GIT_CONFIG_VALUE_2": "always",
    "GIT_CONFIG_KEY_3": "protocol.file.allow",
    "GIT_CONFIG_VALUE_3": "user",
}

#: A conda-held package's stub has no upload time; this lets it past ``--exclude-newer``.
_FOREVER = "9999-01-01T00:00:00Z"

#: PEP 440, from its appendix: a conda version that is not one cannot be held on PyPI.
_PEP440 = re.compile(
    r"v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?"
    r"(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?(?:[-_.]?dev[-_.]?[0-9]*)?"
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PyPIRequest:
    """Everything one target's PyPI resolution depends on (and nothing from the process).

    ``conda_packages`` maps PyPI names (already translated from conda's) to the versions
    the conda solution installs; ``index_urls[0]`` is the index, the rest extra indexes,
    searched first-index-wins (uv's default, which stops dependency confusion).
    ``proxy_url`` is the only proxy uv sees: the egress proxy, when the caller has one.
    """

    requirements: tuple[str, ...]
    index_urls: tuple[str, ...]
    python_version: str
    target: Target
    cache_dir: Path
    conda_packages: Mapping[str, str] = field(default_factory=dict)
    exclude_newer: datetime | None = None
    builds_allowed: bool = True
    timeout: float = 300.0
    #: The interpreter uv runs builds with (uv needs one even to resolve); this one's by
    #: default, since a minimal PATH may hold none.
    python: str = sys.executable
    proxy_url: str | None = None
    path: str = os.defpath
    #: Where uv and git find the CA certificates to trust: the service's own
    #: ``SSL_CERT_FILE``/``SSL_CERT_DIR`` (a site behind a TLS-inspecting proxy needs its
    #: CA); no secret, and nothing else of the process's environment.
    trust: Mapping[str, str] = field(default_factory=lambda: trust_environment(os.environ))


@dataclass(frozen=True)
class PyPIPackage:
    """One package of the resolution and the one file the target installs.

    ``size`` is None only if uv's pylock.toml omits it (uv 0.5 and later write it from
    the index's PEP 691/700 data). ``requires_python`` comes from pylock.toml when uv
    writes it per package, which it does not yet. ``requires`` is empty for now: uv's
    pylock.toml records no dependency edges for ``pip compile``; the lines come from the
    file's core metadata (PEP 658) when the resolver is wired into the solve job.
    """

    name: str
    version: str
    url: str
    filename: str
    sha256: str
    size: int | None
    requires_python: str | None = None
    requires: tuple[str, ...] = ()
    #: ``index``: a file of an index; ``url``: a direct reference (pylock's ``archive``,
    #: ``url`` the file, ``sha256`` uv's when it hashed it, else ""); ``vcs``: a commit
    #: of a repository (``url`` the repository, no file yet: ``sha256`` "", ``size`` None).
    kind: Literal["index", "url", "vcs"] = "index"
    vcs: VcsSource | None = None


@dataclass(frozen=True)
class VcsSource:
    """A VCS requirement as uv resolved it (pylock.toml's ``vcs`` table)."""

    type: str
    url: str  # the repository, as uv fetched it
    commit: str
    requested_revision: str | None = None
    subdirectory: str | None = None


class PyPIFailure(Exception):
    """The resolution failed; ``kind`` says whose fault, ``message`` is uv's explanation."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def python_platform(target: Target) -> tuple[str, dict[str, str]]:
    """uv's ``--python-platform`` for a target, and environment variables it needs.

    linux: manylinux at the target's ``__glibc``; macOS: the target's ``__osx`` through
    ``MACOSX_DEPLOYMENT_TARGET`` (uv assumes 13.0 otherwise, which would pick wheels an
    11.0 machine cannot install).
    """
    virtual = dict(entry.split("=")[:2] for entry in target.virtual_packages)
    if target.platform in _LINUX_ARCH:
        glibc = tuple(int(p) for p in virtual.get("__glibc", DEFAULT_GLIBC).split(".")[:2])
        fitting = [level for level in UV_MANYLINUX if level <= glibc]
        if not fitting:
            raise PyPIFailure(
                "platform",
                f"target {target.name}: no manylinux wheels for glibc {'.'.join(map(str, glibc))}"
                " (uv targets manylinux_2_17 and later)",
            )
        major, minor = fitting[-1]
        return f"{_LINUX_ARCH[target.platform]}-manylinux_{major}_{minor}", {}
    if target.platform in _DARWIN:
        osx = virtual.get("__osx", DEFAULT_OSX)
        osx = osx if "." in osx else f"{osx}.0"
        return _DARWIN[target.platform], {"MACOSX_DEPLOYMENT_TARGET": osx}
    if target.platform in _WINDOWS:
        return _WINDOWS[target.platform], {}
    raise PyPIFailure("platform", f"target {target.name}: uv cannot resolve for {target.platform}")


#: Variables that say which CA certificates to trust (uv reads SSL_CERT_*, git its own).
TRUST_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO")


def trust_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: environ[name] for name in TRUST_VARIABLES if environ.get(name)}


def stub_wheel(name: str, version: str) -> tuple[str, bytes]:
    """A wheel that installs nothing and declares no dependencies: conda's package as uv
    sees it, so a PyPI package that depends on it is satisfied by conda's version."""
    dist = re.sub(r"[-_.]+", "_", name).lower()
    info = f"{dist}-{version}.dist-info"
    members = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    members[f"{info}/RECORD"] = f"{record}{info}/RECORD,,\n".encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in members.items():
            archive.writestr(path, data)
    return f"{dist}-{version}-py3-none-any.whl", buffer.getvalue()


def held(conda_packages: Mapping[str, str]) -> dict[str, str]:
    """The conda packages uv can be told about: those whose version PEP 440 accepts.

    A conda version PyPI cannot spell (``2023c``, ``1.0_1``) cannot be compared with
    PyPI requirements at all; such a package is left to PyPI (the caller may refuse).
    """
    return {
        name: version
        for name, version in sorted(conda_packages.items())
        if _PEP440.fullmatch(version)
    }


def uv_command(request: PyPIRequest, platform: str, stubs: Path, constraints: Path) -> list[str]:
    indexes = list(request.index_urls)
    command = [
        find_uv_bin(),
        "pip",
        "compile",
        "-",
        "--format",
        "pylock.toml",
        "--python-version",
        request.python_version,
        "--python-platform",
        platform,
        "--python",
        request.python,
        "--no-python-downloads",
        "--no-config",
        "--no-progress",
        "--no-header",
        "--color",
        "never",
        "--cache-dir",
        str(request.cache_dir),
        "--index-url",
        indexes[0],
    ]
    for extra in indexes[1:]:
        command += ["--extra-index-url", extra]
    holds = held(request.conda_packages)
    if holds:
        command += ["--find-links", str(stubs), "--constraints", str(constraints)]
        for name in holds:
            command += ["--no-emit-package", name]
    if request.exclude_newer is not None:
        command += ["--exclude-newer", str(format_time(request.exclude_newer))]
        for name in holds:
            command += ["--exclude-newer-package", f"{name}={_FOREVER}"]
    if not request.builds_allowed:
        command.append("--no-build")
    return command


def uv_environment(request: PyPIRequest, scratch: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The whole environment uv (and any build backend it runs) sees: built, not copied."""
    env = {
        "PATH": request.path,
        "HOME": str(scratch / "home"),
        "TMPDIR": str(scratch / "tmp"),
        "LC_ALL": "C.UTF-8",
        "NO_COLOR": "1",
        **GIT_ENV,
        **extra,
    }
    env.update(request.trust)
    if request.proxy_url:
        # upper case for uv, lower case for git (which uv runs for VCS requirements)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            env[name] = request.proxy_url
    return env


def resolve(request: PyPIRequest) -> list[PyPIPackage]:
    """Resolve one target's PyPI requirements; sorted by name, or :class:`PyPIFailure`."""
    if not request.requirements:
        return []
    if not request.index_urls:
        raise PyPIFailure("index", "no PyPI index given")
    platform, platform_env = python_platform(request.target)
    request.cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="condarchive-pypi-") as temp:
        scratch = Path(temp)
        for sub in ("home", "tmp", "stubs", "work"):
            (scratch / sub).mkdir()
        holds = held(request.conda_packages)
        for name, version in holds.items():
            filename, data = stub_wheel(name, version)
            (scratch / "stubs" / filename).write_bytes(data)
        constraints = scratch / "conda-constraints.txt"
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in holds.items()))
        stdout, stderr = run(
            uv_command(request, platform, scratch / "stubs", constraints),
            "".join(f"{line}\n" for line in request.requirements),
            uv_environment(request, scratch, platform_env),
            scratch / "work",
            request.timeout,
        )
    return parse_pylock(stdout)


def run(
    command: list[str], stdin: str, env: dict[str, str], cwd: Path, timeout: float
) -> tuple[str, str]:
    """Run uv in its own process group; kill the whole group (builds too) at the deadline."""
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):  # it may have just ended
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise PyPIFailure("timeout", f"uv did not finish within {timeout:g} s") from None
    finally:
        if process.poll() is None:  # an exception other than the timeout
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.returncode != 0:
        raise classify(stderr)
    return stdout, stderr


_INDEX_ERRORS = re.compile(
    r"Failed to fetch|error sending request|Connection refused|client error \(|"
    r"server error \(|dns error|tcp connect error|Request failed after|"
    r"Failed to read from the distribution cache|operation timed out",
    re.IGNORECASE,
)


def classify(stderr: str) -> PyPIFailure:
    """A failed run's kind, from uv's message (uv's exit code is 1 or 2 for everything)."""
    message = "\n".join(
        line for line in stderr.strip().splitlines() if not line.startswith("warning:")
    )
    message = message or stderr.strip() or "uv failed without a message"
    if "building from source is disabled" in message or "--no-build" in message:
        return PyPIFailure("build", message)
    if re.search(r"An index \(.*\) returned a \d{3}", message):
        # uv reads 401/403 on a project page as "not found" and says so only in a hint
        return PyPIFailure("index", message)
    if "No solution found" in message:
        return PyPIFailure("unsatisfiable", message)
    if re.search(r"Failed to build|Build backend failed|Failed to prepare", message):
        return PyPIFailure("build", message)
    if _INDEX_ERRORS.search(message):
        return PyPIFailure("index", message)
    return PyPIFailure("resolver", message)


def _filename(item: Mapping[str, object]) -> str:
    return str(item.get("name") or unquote(urlsplit(str(item["url"])).path.rsplit("/", 1)[-1]))


def wheel_preference(item: Mapping[str, object]) -> tuple[object, ...]:
    """Sort key: the wheel an installer would pick first sorts first.

    uv lists every wheel the target can install (``manylinux_2_17`` and ``_2_28`` on a
    2.28 target, ``macosx_11_0`` and ``_14_0`` on macOS 14); an installer takes the one
    whose best tag comes first in its tag order (``packaging.tags.sys_tags``): a
    platform-specific wheel before ``any``, the interpreter's own ABI before ``abi3``
    before ``none``, a newer Python tag first, then the newest platform level.
    """
    stem = _filename(item).removesuffix(".whl").split("-")
    pythons, abis, platforms = stem[-3].split("."), stem[-2].split("."), stem[-1].split(".")
    return min(
        _tag_rank(python, abi, platform)
        for python in pythons
        for abi in abis
        for platform in platforms
    )


_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def _tag_rank(python: str, abi: str, platform: str) -> tuple[object, ...]:
    digits = re.sub(r"\D", "", python)
    python_version = int(digits) if digits else 0
    abi_rank = 0 if abi == python and abi.startswith("cp") else 1 if abi == "abi3" else 2
    legacy = next((v for k, v in _LEGACY_MANYLINUX.items() if platform.startswith(k)), None)
    level = re.search(r"_(\d+)_(\d+)_", platform)
    major, minor = legacy or ((int(level[1]), int(level[2])) if level else (0, 0))
    universal = platform.endswith(("universal2", "universal", "intel", "fat64", "fat3"))
    return (platform == "any", abi_rank, -python_version, -major, -minor, universal)


def parse_pylock(text: str) -> list[PyPIPackage]:
    """pylock.toml (PEP 751) from uv, one target: each package's one file, or the commit
    of a VCS requirement (``vcs``), or a direct URL's file (``archive``)."""
    document = tomllib.loads(text)
    packages = []
    for entry in document.get("packages", []):
        if "vcs" in entry:
            packages.append(_vcs_package(entry))
            continue
        if "archive" in entry:
            packages.append(_archive_package(entry))
            continue
        wheels = entry.get("wheels") or []
        chosen = min(wheels, key=wheel_preference) if wheels else entry.get("sdist")
        if chosen is None:
            kinds = sorted(k for k in ("directory", "path") if k in entry)
            raise PyPIFailure(
                "resolver", f"{entry['name']}: uv gave no file ({', '.join(kinds) or 'none'})"
            )
        url = chosen["url"]
        packages.append(
            PyPIPackage(
                name=entry["name"],
                version=entry["version"],
                url=url,
                filename=_filename(chosen),
                sha256=chosen["hashes"]["sha256"],
                size=chosen.get("size"),
                requires_python=entry.get("requires-python"),
            )
        )
    return sorted(packages, key=lambda p: p.name)


def _vcs_package(entry: Mapping[str, object]) -> PyPIPackage:
    """``vcs = {type, url, requested-revision?, commit-id, subdirectory?}`` (uv 0.13)."""
    table = entry["vcs"]
    assert isinstance(table, Mapping)
    commit = str(table.get("commit-id") or "")
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise PyPIFailure("resolver", f"{entry['name']}: uv gave no commit for {table.get('url')}")
    source = VcsSource(
        type=str(table.get("type") or "git"),
        url=str(table["url"]),
        commit=commit,
        requested_revision=_optional(table.get("requested-revision")),
        subdirectory=_optional(table.get("subdirectory")),
    )
    return PyPIPackage(
        name=str(entry["name"]),
        version=str(entry.get("version") or f"0+g{commit[:12]}"),
        url=source.url,
        filename="",
        sha256="",
        size=None,
        requires_python=_optional(entry.get("requires-python")),
        kind="vcs",
        vcs=source,
    )


def _archive_package(entry: Mapping[str, object]) -> PyPIPackage:
    """``archive = {url, hashes?, size?}``: a direct reference (``name @ https://…``)."""
    table = entry["archive"]
    assert isinstance(table, Mapping)
    hashes = table.get("hashes") or {}
    assert isinstance(hashes, Mapping)
    size = table.get("size")
    return PyPIPackage(
        name=str(entry["name"]),
        version=str(entry.get("version") or ""),
        url=str(table["url"]),
        filename=_filename(table),
        sha256=str(hashes.get("sha256") or ""),
        size=int(size) if isinstance(size, int) else None,
        requires_python=_optional(entry.get("requires-python")),
        kind="url",
    )


def _optional(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
