"""`condarchive install` and `verify`: restore environments from the archive, and check it.

`install` reads the lock and its archive status from the server, takes each package's
record from the archive channel's repodata (what any conda client would see), checks it
against the lock's hashes, and links the environment with py-rattler, which verifies each
download's sha256. It needs nothing from upstream, so it works after upstream removed a
package. `verify` runs against the database and blob store directly (like `db upgrade`);
it exits 1 when a blob is corrupt or missing or a stored lock no longer hashes to its id
(and, with --fail-on-drift, when upstream removed or changed an archived package).
`condarchive beat` (app/cli/service.py) runs `verify` periodically.

`install` takes the same lock refs as `show`, `export` and `diff` (the full id or a unique
prefix of 8+ hex), and does not damage what is there: it refuses a target whose platform
cannot run here (see `runs_here`), unless --platform-mismatch-ok; it refuses an existing
non-empty prefix unless --force; and it links into a sibling directory on the same
filesystem, with the final prefix patched into the files, so the prefix is replaced (by
renames) only once the new environment is complete and checked. A failed install leaves
nothing behind and the old prefix as it was.

Exit codes as in app/cli/common.py: 0 done, 1 failed, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_server_argument,
    exit_code_for_status,
    fail,
    server_url,
)
from app.cli.prefix import (
    InstallFailed,
    escapes,
    install_staged,
    linked_paths,
    prefix_problems,
    prefix_refusal,
    runs_here,
)
from app.cli.pypi_install import PyPIInstallFailed, install_pypi, pypi_missing, warn_local


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the archive commands to the `condarchive` parser."""
    install = sub.add_parser(
        "install", help="install a locked target from the archive, or from an offline bundle"
    )
    install.add_argument("lock_id", nargs="?", help="lock id or a unique prefix of 8+ characters")
    install.add_argument(
        "--bundle",
        metavar="FILE",
        help="install from this offline bundle (condarchive bundle), with no network",
    )
    install.add_argument("-t", "--target", help="target name (default: the lock's only target)")
    install.add_argument("-p", "--prefix", required=True, help="environment directory to create")
    install.add_argument(
        "--force",
        action="store_true",
        help="replace an existing environment at --prefix (once the new one is complete)",
    )
    install.add_argument(
        "--platform-mismatch-ok",
        action="store_true",
        help="install a target for another platform (to prepare a prefix for that machine)",
    )
    add_server_argument(install)
    install.add_argument("--cache-dir", help="package cache (default: rattler's)")
    install.set_defaults(func=cmd_install, exit_at_once=True)

    verify = sub.add_parser(
        "verify", help="re-hash archived blobs and report packages upstream removed or changed"
    )
    verify.add_argument("--no-upstream", action="store_true", help="only re-hash the blobs")
    verify.add_argument("--json", action="store_true", help="print the whole report as JSON")
    verify.add_argument(
        "--fail-on-drift", action="store_true", help="exit 1 when upstream removed or changed any"
    )
    verify.set_defaults(func=cmd_verify)


def _fetch_plan(
    server: str, lock_id: str, target: str | None
) -> tuple[str, dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(target name, lock, locked packages, their archive states) from the server."""
    import httpx

    from app.auth.client import auth_headers

    headers = {"Accept": "application/json", **auth_headers()}
    with httpx.Client(base_url=server, timeout=60, headers=headers) as client:
        # A prefix redirects to the full id; an ambiguous one answers 409 with the candidates.
        response = client.get(f"/api/v1/locks/{quote(lock_id)}", follow_redirects=True)
        if response.status_code == 404:
            raise LookupError(f"no lock {lock_id} on {server}")
        if response.status_code == 409:
            raise LookupError(_detail(response))
        response.raise_for_status()
        lock = response.json()
        lock_id = lock["id"]
        if target is None:
            if len(lock["targets"]) != 1:
                names = ", ".join(sorted(lock["targets"]))
                raise LookupError(f"the lock has several targets ({names}); pick one with --target")
            target = next(iter(lock["targets"]))
        if target not in lock["targets"]:
            names = ", ".join(sorted(lock["targets"]))
            raise LookupError(f"the lock has no target {target!r} (it has {names})")
        status = client.get(f"/api/v1/locks/{lock_id}/archive")
        status.raise_for_status()
        lock["requested"] = _requested_specs(client, lock["id"])
    packages = lock["targets"][target]["packages"]
    states = status.json()["targets"][target]["packages"]
    lock["pypi_states"] = status.json()["targets"][target].get("pypi_packages") or []
    return target, lock, packages, states


def _detail(response: Any) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text.strip()


def _requested_specs(client: Any, lock_id: str) -> list[str]:
    """The match specs the newest solve of this lock asked for (they label conda-meta's
    `requested_spec`); the lock itself holds none, since what was asked belongs to each
    request. Empty for an imported lock, or a server that cannot say."""
    response = client.get(f"/api/v1/locks/{lock_id}/requests", params={"limit": 20})
    if response.status_code != 200:
        return []
    for request in response.json().get("items", []):
        if request.get("kind") == "solve":
            return list(request.get("spec", {}).get("dependencies") or [])
    return []


def _archive_records(
    packages: list[dict[str, Any]], states: list[dict[str, Any]], server: str = ""
) -> list[Any]:
    """RepoDataRecords pointing at the archive, checked against the lock's hashes."""
    import httpx
    import rattler

    from app.auth.client import auth_headers_for
    from app.core.filenames import check_package_filename, check_subdir

    by_url = {s["url"]: s for s in states}
    groups: dict[str, list[dict[str, Any]]] = {}
    for package in packages:
        # The server's word, from upstream's: plain names before they name cache files.
        check_package_filename(package["filename"])
        check_subdir(package["subdir"])
        archive_url = by_url[package["url"]]["archive_url"]
        channel_subdir = archive_url.rsplit("/", 1)[0]
        groups.setdefault(channel_subdir, []).append(package)
    records: list[Any] = []
    with httpx.Client(timeout=60) as client, tempfile.TemporaryDirectory() as tmp:
        for index, (channel_subdir, members) in enumerate(sorted(groups.items())):
            url = f"{channel_subdir}/repodata.json"
            response = client.get(url, headers=auth_headers_for(url, server))
            response.raise_for_status()
            repodata = response.json()
            listed = {**repodata.get("packages", {}), **repodata.get("packages.conda", {})}
            subset: dict[str, Any] = {
                "info": {"subdir": members[0]["subdir"]},
                "packages": {},
                "packages.conda": {},
            }
            for package in members:
                record = listed.get(package["filename"])
                if record is None:
                    raise LookupError(f"{channel_subdir} does not list {package['filename']}")
                for field in ("sha256", "md5", "size"):
                    if package[field] and record.get(field) != package[field]:
                        raise ValueError(
                            f"{channel_subdir}/{package['filename']}: archive {field} "
                            f"{record.get(field)} differs from the lock's {package[field]}"
                        )
                # Read what the link step would write before anything is linked, from the
                # very bytes rattler will install (it re-checks this sha256 on download).
                archive_file = by_url[package["url"]]["archive_url"]
                digest = _check_contained(
                    client, archive_file, package["filename"], server, Path(tmp)
                )
                if record.get("sha256") and record["sha256"] != digest:
                    raise ValueError(
                        f"{archive_file}: archive served sha256 {digest}, "
                        f"its repodata says {record['sha256']}"
                    )
                record = {**record, "sha256": digest}
                section = "packages.conda" if package["filename"].endswith(".conda") else "packages"
                subset[section][package["filename"]] = record
            path = Path(tmp) / f"{index}.json"
            path.write_text(json.dumps(subset))
            channel = rattler.Channel(channel_subdir.rsplit("/", 1)[0])
            records += rattler.RepoData.from_path(path).into_repo_data(channel)
    return records


def _check_contained(client: Any, url: str, filename: str, server: str, tmp: Path) -> str:
    """Download the package at `url`; refuse it if a path it links leaves the prefix.

    rattler's link step copies every path that `info/paths.json` lists from the package's
    cache entry to the same path under the prefix, and does not check the path: `../x`
    or `/x` would be written outside `--prefix`. Returns the sha256 of the bytes read.
    """
    import hashlib

    from app.auth.client import auth_headers_for

    path = tmp / filename
    sha256 = hashlib.sha256()
    with client.stream("GET", url, headers=auth_headers_for(url, server)) as response:
        response.raise_for_status()
        with path.open("wb") as out:
            for chunk in response.iter_bytes(1 << 20):
                sha256.update(chunk)
                out.write(chunk)
    try:
        for entry, link in linked_paths(path, tmp / f"{filename}.extracted"):
            problem = escapes(entry, link)
            if problem:
                raise ValueError(
                    f"package {filename}: info/paths.json lists {entry!r}, which {problem} "
                    f"outside the prefix; refusing to install it (nothing was linked)"
                )
    finally:
        path.unlink(missing_ok=True)
    return sha256.hexdigest()


def cmd_install(args: argparse.Namespace) -> int:
    import httpx
    import rattler

    if args.bundle:
        if args.lock_id:
            return fail("give a lock id or --bundle, not both", EXIT_USAGE)
        from app.cli.bundle_install import cmd_install_bundle

        return cmd_install_bundle(args)
    if not args.lock_id:
        return fail("give a lock id (or --bundle FILE)", EXIT_USAGE)

    server = server_url(args)
    try:
        target, lock, packages, states = _fetch_plan(server, args.lock_id, args.target)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except httpx.HTTPStatusError as exc:  # refused (401, 403, 429, ...) or failed (5xx)
        status = exc.response.status_code
        print(f"error: {server} answered {status} for {exc.request.url.path}", file=sys.stderr)
        return exit_code_for_status(status)
    except httpx.HTTPError as exc:
        return fail(f"cannot reach condarchive at {server}: {exc}")
    platform = lock["targets"][target]["platform"]
    if not runs_here(platform) and not args.platform_mismatch_ok:
        here = rattler.Subdir.current()
        return fail(
            f"target {target} is for {platform}, which cannot run on this machine ({here}); "
            "pass --platform-mismatch-ok to prepare a prefix for a machine it runs on",
            EXIT_USAGE,
        )
    prefix = Path(args.prefix).resolve()
    refusal = prefix_refusal(prefix, args.force)
    if refusal:
        return fail(refusal, EXIT_USAGE)
    pypi_packages = lock["targets"][target].get("pypi_packages") or []
    missing = [s for s in states if s["state"] != "archived"]
    missing += pypi_missing(lock["pypi_states"]) if pypi_packages else []
    if missing:
        for state in missing:
            reason = f" ({state['reason']})" if state.get("reason") else ""
            print(f"not archived: {state['filename']}: {state['state']}{reason}", file=sys.stderr)
        return fail(f"{len(missing)} package(s) of target {target} are not in the archive")
    warn_local(lock["targets"][target].get("pypi_local") or [])
    try:
        records = _archive_records(packages, states, server)
    except (LookupError, ValueError) as exc:
        return fail(str(exc))
    except httpx.HTTPError as exc:
        return fail(f"cannot read the archive channel: {exc}")
    specs = []
    for text in lock.get("requested", []):
        try:
            specs.append(rattler.MatchSpec(text))
        except Exception:  # noqa: BLE001 - a spec only labels conda-meta; skip odd ones
            continue

    def link(staging: Path) -> None:
        asyncio.run(
            rattler.install(
                records,
                target_prefix=staging,
                # The files name the final prefix, not the staging directory they are in.
                alternative_target_prefix=prefix,
                cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                platform=rattler.Subdir(platform),
                execute_link_scripts=False,
                show_progress=False,
                # py-rattler 0.28 passes these to Rust unwrapped; hand it the inner specs.
                requested_specs=[getattr(s, "_match_spec", s) for s in specs] or None,
            )
        )
        problems = prefix_problems(staging, packages)
        if problems:
            raise InstallFailed("; ".join(problems))
        # The PyPI part after the conda part, into the same staging directory.
        install_pypi(
            staging, prefix, platform, packages, pypi_packages, lock["pypi_states"], server
        )

    try:
        install_staged(prefix, link)
    except (InstallFailed, PyPIInstallFailed) as exc:
        return fail(f"install into {prefix} failed: {exc}; {prefix} was left as it was")
    except Exception as exc:  # noqa: BLE001 - rattler reports download and hash errors here
        return fail(f"install into {prefix} failed: {exc}; {prefix} was left as it was")
    pypi = f" and {len(pypi_packages)} PyPI packages" if pypi_packages else ""
    print(f"installed {len(packages)} packages{pypi} from the archive into {prefix}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from app.cli.common import missing_database

    if (refused := missing_database()) is not None:
        return refused
    from app.archive.blobs import get_store
    from app.archive.verify import run_verify
    from app.db.session import session_scope

    with session_scope() as session:
        report = run_verify(session, get_store(), upstream=not args.no_upstream)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_report(report)
    summary = report["summary"]
    drift = any(
        summary.get(key)
        for key in (
            "removed_upstream",
            "changed_upstream",
            "pypi_removed_upstream",
            "pypi_changed_upstream",
            "pypi_yanked_upstream",
        )
    )
    if not summary["ok"] or (args.fail_on_drift and drift):
        return EXIT_FAILED
    return EXIT_OK


def _print_report(report: dict[str, Any]) -> None:
    blobs = report["blobs"]
    print(
        f"blobs: {blobs['checked']} checked, {len(blobs['corrupt'])} corrupt, "
        f"{len(blobs['missing'])} missing"
    )
    for item in blobs["corrupt"]:
        print(
            f"corrupt: {item['sha256']}: now sha256 {item['actual']['sha256']} "
            f"md5 {item['actual']['md5']} size {item['actual']['size']}"
        )
    for sha256 in blobs["missing"]:
        print(f"missing: {sha256}")
    locks = report.get("locks") or {"checked": 0, "mismatched": [], "packages_mismatched": []}
    print(
        f"locks: {locks['checked']} re-hashed, {len(locks['mismatched'])} do not match their "
        f"id, {len(locks['packages_mismatched'])} package rows do not match their key"
    )
    for item in locks["mismatched"]:
        print(f"lock changed: {item['lock_id']} now hashes to {item['hashes_to']}")
    for item in locks["packages_mismatched"]:
        print(
            f"package row changed: {item['package_id']} ({item['url']}) now hashes to "
            f"{item['hashes_to']}, not its key {item['record_key']}"
        )
    _print_pypi(report.get("pypi"))
    upstream = report.get("upstream")
    if upstream is None:
        return
    print(
        f"upstream: {upstream['channels_checked']} channel subdirs checked, "
        f"{len(upstream['removed'])} removed, {len(upstream['changed'])} changed, "
        f"{len(upstream['unreachable'])} unreachable"
    )
    for item in upstream["removed"]:
        print(f"removed upstream: {item['url']} (locks: {', '.join(item['locks']) or '-'})")
    for item in upstream["changed"]:
        print(
            f"changed upstream: {item['url']}: archived sha256 {item['archived']['sha256']}, "
            f"upstream {item['upstream']['sha256']} (locks: {', '.join(item['locks']) or '-'})"
        )
    for item in upstream["unreachable"]:
        print(f"unreachable: {item['url']}: {item['error']}")


def _print_pypi(pypi: dict[str, Any] | None) -> None:
    """The PyPI files: blobs corrupt or missing, and what their indexes say now."""
    if pypi is None:
        return
    print(
        f"pypi: {pypi['checked']} archived files, {len(pypi['corrupt'])} corrupt, "
        f"{len(pypi['missing'])} missing"
    )
    for item in pypi["corrupt"]:
        print(f"corrupt PyPI file: {item['filename']} ({item['sha256']})")
    for item in pypi["missing"]:
        print(f"missing PyPI file: {item['filename']} ({item['sha256']})")
    upstream = pypi.get("upstream")
    if upstream is None:
        return
    print(
        f"pypi upstream: {upstream['files_checked']} files checked, "
        f"{len(upstream['removed'])} removed, {len(upstream['changed'])} changed, "
        f"{len(upstream['yanked'])} yanked, {len(upstream['unreachable'])} unreachable"
    )
    for item in upstream["removed"]:
        locks = ", ".join(item["locks"]) or "-"
        print(f"removed upstream: {item['url']} ({item['why']}; locks: {locks})")
    for item in upstream["changed"]:
        print(
            f"changed upstream: {item['url']}: archived sha256 {item['sha256']}, "
            f"upstream {item['upstream_sha256']} (locks: {', '.join(item['locks']) or '-'})"
        )
    for item in upstream["yanked"]:
        reason = f": {item['reason']}" if item.get("reason") else ""
        print(f"yanked upstream{reason}: {item['url']} (locks: {', '.join(item['locks']) or '-'})")
    for item in upstream["unreachable"]:
        print(f"unreachable: {item['url']}: {item['error']}")
