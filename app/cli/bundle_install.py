"""`condarchive install --bundle FILE --prefix P`: restore a target from its offline bundle
(app/archive/bundle.py), with no network at all.

The tar is unpacked into a scratch directory (members that would leave it are refused by
tarfile's ``data`` filter), every file is checked against the lock the bundle carries
(sha256 and size) before anything is linked, and the conda part is installed by
py-rattler from the bundle's own channel (``file://`` URLs), the PyPI part by uv from its
``pypi/files``: the same staged install as from a server, so a failure leaves nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, EXIT_USAGE, fail


class BundleRefused(Exception):
    """The file is not a bundle this command can trust, or does not match its lock."""


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def unpack(bundle: Path, into: Path) -> tuple[Path, dict[str, Any], str]:
    """(the bundle's root directory, its lock, its target), or :class:`BundleRefused`."""
    try:
        with tarfile.open(bundle) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BundleRefused(f"{bundle} is not a readable tar: {exc}") from exc
    roots = [p for p in into.iterdir() if p.is_dir()]
    if len(roots) != 1 or not (roots[0] / "lock.json").is_file():
        raise BundleRefused(f"{bundle} is not a condarchive bundle (no lock.json in one folder)")
    root = roots[0]
    lock = json.loads((root / "lock.json").read_text())
    prefix = f"condarchive-{lock['id'][:12]}-"
    target = root.name.removeprefix(prefix)
    if not root.name.startswith(prefix) or target not in lock.get("targets", {}):
        raise BundleRefused(f"{bundle}: its folder {root.name!r} names no target of its lock")
    return root, lock, target


def check_files(root: Path, data: dict[str, Any]) -> None:
    """Every file the target installs is in the bundle, with the lock's sha256 and size.

    The names come from the bundle's own lock.json: each is checked to be a plain file
    name (and subdir) before it is joined to a path."""
    from app.core.filenames import check_package_filename, check_subdir
    from app.locks.pypi_records import InvalidPyPIPackage, LockedPyPIPackage

    try:
        for package in data["packages"]:
            check_package_filename(package["filename"])
            check_subdir(package["subdir"])
        for package in data.get("pypi_packages") or []:
            LockedPyPIPackage.from_canonical(package)
    except (InvalidPyPIPackage, ValueError, KeyError, TypeError) as exc:
        raise BundleRefused(f"the bundle's lock.json names a file it cannot hold: {exc}") from exc
    expected = [
        (root / "channel" / p["subdir"] / p["filename"], p["sha256"], p["size"])
        for p in data["packages"]
    ]
    expected += [
        (root / "pypi" / "files" / p["filename"], p["sha256"], p["size"])
        for p in data.get("pypi_packages") or []
    ]
    for path, sha256, size in expected:
        if not path.is_file():
            raise BundleRefused(f"the bundle lacks {path.relative_to(root)}")
        actual, actual_size = _sha256(path)
        if (sha256 and actual != sha256) or (size and actual_size != size):
            raise BundleRefused(
                f"{path.relative_to(root)}: sha256 {actual} ({actual_size} bytes) is not the "
                f"lock's {sha256} ({size} bytes)"
            )


def bundle_records(root: Path, data: dict[str, Any]) -> list[Any]:
    """RepoDataRecords of the target's packages, from the bundle's channel."""
    import rattler

    from app.cli.prefix import escapes, linked_paths
    from app.core.filenames import check_package_filename, check_subdir

    channel = rattler.Channel((root / "channel").as_uri())
    wanted: dict[str, set[str]] = {}
    for package in data["packages"]:
        check_package_filename(package["filename"])
        check_subdir(package["subdir"])
        wanted.setdefault(package["subdir"], set()).add(package["filename"])
        path = root / "channel" / package["subdir"] / package["filename"]
        with tempfile.TemporaryDirectory() as scratch:
            for entry, link in linked_paths(path, Path(scratch) / "x"):
                if problem := escapes(entry, link):
                    raise BundleRefused(
                        f"package {package['filename']}: info/paths.json lists {entry!r}, "
                        f"which {problem} outside the prefix"
                    )
    records: list[Any] = []
    for subdir, filenames in sorted(wanted.items()):
        repodata = json.loads((root / "channel" / subdir / "repodata.json").read_text())
        subset = {"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}}
        for section in ("packages", "packages.conda"):
            for filename, record in (repodata.get(section) or {}).items():
                if filename in filenames:
                    subset[section][filename] = record
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "repodata.json"
            path.write_text(json.dumps(subset))
            records += rattler.RepoData.from_path(path).into_repo_data(channel)
    return records


def cmd_install_bundle(args: argparse.Namespace) -> int:
    import rattler

    from app.cli.prefix import (
        InstallFailed,
        install_staged,
        prefix_problems,
        prefix_refusal,
        runs_here,
    )
    from app.cli.pypi_install import PyPIInstallFailed, install_pypi_files, warn_local

    bundle = Path(args.bundle)
    prefix = Path(args.prefix).resolve()
    if refusal := prefix_refusal(prefix, args.force):
        return fail(refusal, EXIT_USAGE)
    with tempfile.TemporaryDirectory(prefix="condarchive-bundle-") as scratch:
        try:
            root, lock, target = unpack(bundle, Path(scratch))
            if args.target and args.target != target:
                raise BundleRefused(f"{bundle} holds target {target}, not {args.target}")
            data = lock["targets"][target]
            platform = data["platform"]
            if not runs_here(platform) and not args.platform_mismatch_ok:
                here = rattler.Subdir.current()
                return fail(
                    f"target {target} is for {platform}, which cannot run on this machine "
                    f"({here}); pass --platform-mismatch-ok to prepare a prefix for a machine "
                    "it runs on",
                    EXIT_USAGE,
                )
            check_files(root, data)
            records = bundle_records(root, data)
        except BundleRefused as exc:
            return fail(str(exc), EXIT_USAGE)
        warn_local(data.get("pypi_local") or [])
        packages, pypi = data["packages"], data.get("pypi_packages") or []

        def link(staging: Path) -> None:
            asyncio.run(
                rattler.install(
                    records,
                    target_prefix=staging,
                    alternative_target_prefix=prefix,
                    cache_dir=Path(scratch) / "pkgs",
                    platform=rattler.Subdir(platform),
                    execute_link_scripts=False,
                    show_progress=False,
                )
            )
            if problems := prefix_problems(staging, packages):
                raise InstallFailed("; ".join(problems))
            install_pypi_files(staging, prefix, platform, packages, pypi, root / "pypi" / "files")

        try:
            install_staged(prefix, link)
        except (InstallFailed, PyPIInstallFailed) as exc:
            return fail(f"install into {prefix} failed: {exc}; {prefix} was left as it was")
        except Exception as exc:  # noqa: BLE001 - rattler reports link errors here
            return fail(f"install into {prefix} failed: {exc}; {prefix} was left as it was")
    extra = f" and {len(pypi)} PyPI packages" if pypi else ""
    print(f"installed {len(packages)} packages{extra} from {bundle} into {prefix}")
    return EXIT_OK
