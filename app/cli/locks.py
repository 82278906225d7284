"""`condarchive lock | show | export | import | diff | list | search`: locks, over HTTP.

These talk to a running server (``--server``, default the configured public URL), so they
work the same against a local or a shared service. Exit codes as in app/cli/common.py:
0 done, 1 the work failed (solve failed, unreachable server, 5xx), 2 the request was
refused or malformed (bad arguments, an unknown lock, any 4xx from the server).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from app.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_server_argument,
    exit_code_for_status,
    print_error,
    server_url,
)

EXPORT_FORMATS = (
    "conda-lock",
    "explicit",
    "pixi",
    "env",
    "requirements",
    "pylock",
    "sbom",
    "dockerfile",
)
#: The formats of one target: `--target` is required.
PER_TARGET = ("explicit", "requirements", "pylock", "sbom", "dockerfile")
#: The formats `--source archive` points at the archive's copies.
ARCHIVE_SOURCED = ("explicit", "requirements", "pylock")


def parse_cli_target(text: str) -> str | dict[str, Any]:
    """`linux-64`, `linux-64-cuda12`, or `NAME=PLATFORM:__vp=ver,__vp=ver`."""
    if "=" in text.split(":", 1)[0] and ":" in text:
        name, rest = text.split("=", 1)
        platform, _, packages = rest.partition(":")
        return {
            "name": name,
            "platform": platform,
            "virtual_packages": [p for p in packages.split(",") if p],
        }
    return text


def _with_channels(text: str, channels: list[str]) -> str:
    """environment.yml with its `channels` replaced by those given with -c, as conda-lock's
    ``--channel`` overrides the channels of its source files. Text that is no YAML mapping
    is sent as it is, for the server to say what is wrong with it (and where)."""
    import yaml

    from app.core import safe_yaml

    try:
        data = safe_yaml.load(text)
    except Exception:  # noqa: BLE001 - the server parses it again and names the problem
        return text
    if not isinstance(data, dict):
        return text
    print(f"channels from -c replace the file's: {', '.join(channels)}", file=sys.stderr)
    data["channels"] = list(channels)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def cmd_lock(args: argparse.Namespace) -> int:
    import httpx

    from app.auth.client import auth_headers

    body: dict[str, Any] = {"channel_priority": args.channel_priority}
    if args.file:
        if args.spec:
            print(
                "error: give an environment.yml file or --spec, not both: --spec does not add "
                f"to {args.file}'s dependencies (add them to the file instead)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            text = Path(args.file).read_text() if args.file != "-" else sys.stdin.read()
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
        body["environment"] = _with_channels(text, args.channel) if args.channel else text
    else:
        if not args.spec:
            print("error: give an environment.yml file or --spec", file=sys.stderr)
            return EXIT_USAGE
        body["dependencies"] = args.spec
        body["channels"] = args.channel or ["conda-forge"]
    if args.target:
        body["targets"] = [parse_cli_target(t) for t in args.target]
    if args.exclude_newer:
        body["exclude_newer"] = args.exclude_newer
    if args.pip:
        if args.file:
            print("error: --pip goes with --spec; a file has its own pip: list", file=sys.stderr)
            return EXIT_USAGE
        body["pypi_dependencies"] = args.pip
    for field, value in (
        ("title", args.title),
        ("authors", args.author),
        ("description", args.description),
    ):
        if value:
            body[field] = value
    server = server_url(args)
    tty = sys.stderr.isatty()
    try:
        with httpx.Client(base_url=server, timeout=30, headers=auth_headers()) as client:
            response = client.post("/api/v1/solves", json=body)
            if response.status_code == 422:
                print_error(response.json())
                return EXIT_USAGE
            if response.status_code not in (200, 202):
                return _refused(response)
            job = response.json()
            deadline = time.monotonic() + args.timeout
            last = ""
            while job["status"] in ("queued", "running"):
                if time.monotonic() > deadline:
                    print(
                        f"error: gave up waiting after {args.timeout}s; job {job['id']}",
                        file=sys.stderr,
                    )
                    return EXIT_FAILED
                time.sleep(0.2)
                polled = client.get(f"/api/v1/solves/{job['id']}")
                if polled.status_code != 200:
                    return _refused(polled)
                job = polled.json()
                progress = job.get("progress") or {}
                # A target is counted once it has finished, solved or failed.
                done = sum(1 for v in progress.values() if v in ("done", "failed"))
                stage = job.get("stage") or "queued"
                line = f"{job['status']}: {stage} ({done}/{len(progress)} targets done)"
                if tty and line != last:
                    print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
                    last = line
            if tty:
                print("\r\033[K", end="", file=sys.stderr)
            if job["status"] == "failed":
                print_failure(job.get("error") or {})
                return EXIT_FAILED
            fetched = client.get(f"/api/v1/locks/{job['lock_id']}")
            if fetched.status_code != 200:
                return _refused(fetched)
            lock = fetched.json()
    except httpx.HTTPError as exc:
        print(f"error: cannot reach condarchive at {server}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.output:
        Path(args.output).write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    print(job["lock_id"])
    print(job["links"].get("permalink", ""))
    return EXIT_OK


def print_failure(error: dict[str, Any]) -> None:
    """A failed solve's kind and message, then the solver's full explanation unless the
    message holds it already (an unsatisfiable one does): each line printed once."""
    message = str(error.get("message") or "")
    print(f"solve failed ({error.get('kind')}): {message}", file=sys.stderr)
    explanation = str((error.get("detail") or {}).get("explanation") or "").strip()
    if explanation and explanation not in message:
        print(explanation, file=sys.stderr)


def _client(args: argparse.Namespace) -> Any:
    import httpx

    from app.auth.client import auth_headers

    # JSON errors; lockfile downloads are the same whatever the Accept header says.
    return httpx.Client(
        base_url=server_url(args),
        timeout=args.timeout,
        follow_redirects=True,
        headers={"Accept": "application/json", **auth_headers()},
    )


def _ambiguous_ref(response: Any) -> int | None:
    """A lock id prefix that starts several locks (300 from /l/, 409 from the API): print
    the candidates and return EXIT_USAGE; None for any other answer."""
    if response.status_code not in (300, 409):
        return None
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text.strip()}
    print(f"error: {body.get('detail')}", file=sys.stderr)
    for candidate in body.get("links") or {}:
        print(f"  {candidate}", file=sys.stderr)
    return EXIT_USAGE


def _refused(response: Any) -> int:
    """Print why the server said no; return the exit code that fits."""
    ambiguous = _ambiguous_ref(response)
    if ambiguous is not None:
        return ambiguous
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text.strip()
    if isinstance(detail, list):
        for item in detail:
            print(f"error: {item.get('msg')}", file=sys.stderr)
    else:
        print(f"error: {detail} (HTTP {response.status_code})", file=sys.stderr)
    return exit_code_for_status(response.status_code)


def _unreachable(args: argparse.Namespace, exc: Exception) -> int:
    print(f"error: cannot reach condarchive at {server_url(args)}: {exc}", file=sys.stderr)
    return EXIT_FAILED


def _print_lock(lock: dict[str, Any], server: str) -> None:
    print(f"lock      {lock['id']}")
    print(f"permalink {server}/l/{lock['id']}")
    print(f"created   {lock.get('created_at')}")
    channels = (lock.get("spec") or {}).get("channels") or []
    print(f"channels  {', '.join(channels)}")
    for name, target in sorted(lock["targets"].items()):
        packages = target["packages"]
        print(f"\ntarget {name} ({target['platform']}), {len(packages)} packages")
        if target["virtual_packages"]:
            print(f"  virtual packages: {' '.join(target['virtual_packages'])}")
        for p in packages:
            print(f"  {p['name']:<28} {p['version']:<16} {p['build']:<24} {p['channel']}")
        pypi = target.get("pypi_packages") or []
        if pypi:
            print(f"  PyPI, {len(pypi)} packages (pip, after the conda ones):")
        for p in pypi:
            vcs = p.get("vcs") or {}
            where = f"{vcs.get('url')} @ {vcs.get('commit')}" if vcs else p["filename"]
            print(f"  {p['name']:<28} {p['version']:<16} {'pypi':<24} {where}")
        for line in target.get("pypi_local") or []:
            print(f"  {line:<70} local, not archived")


def _get_json(args: argparse.Namespace, path: str) -> tuple[Any, int | None]:
    """GET `path` from the server: (document, None), or (None, exit code) once the reason
    is printed."""
    import httpx

    try:
        with _client(args) as client:
            response = client.get(path)
    except httpx.HTTPError as exc:
        return None, _unreachable(args, exc)
    if response.status_code != 200:
        return None, _refused(response)
    return response.json(), None


def _get_and_print(args: argparse.Namespace, path: str, printer: Any) -> int:
    """GET `path`; print it as JSON with `--json`, else with `printer(data, server)`."""
    data, failed = _get_json(args, path)
    if failed is not None:
        return failed
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        printer(data, server_url(args))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    return _get_and_print(args, f"/l/{quote(args.lock_id)}.json", _print_lock)


def export_path(lock_id: str, fmt: str, target: str | None, source: str = "upstream") -> str:
    """The permalink path of one format (the same URLs the lock page links)."""
    base = f"/l/{quote(lock_id)}"
    archive = "?source=archive" if source == "archive" else ""
    one = quote(target or "")
    if fmt == "explicit":
        return f"{base}/explicit/{one}.txt{archive}"
    if fmt == "requirements":
        return f"{base}/requirements/{one}.txt{archive}"
    if fmt == "pylock":
        return f"{base}/pylock/{one}.toml{archive}"
    if fmt == "sbom":
        return f"{base}/sbom/{one}.cdx.json"
    if fmt == "dockerfile":
        return f"{base}/Dockerfile?target={one}"
    if fmt == "env":
        return f"{base}/environment.yml" + (f"?target={quote(target)}" if target else "")
    return f"{base}/{'conda-lock.yml' if fmt == 'conda-lock' else 'pixi.lock'}"


def cmd_export(args: argparse.Namespace) -> int:
    import httpx

    if args.format in PER_TARGET and not args.target:
        print(f"error: --format {args.format} needs --target", file=sys.stderr)
        return EXIT_USAGE
    if args.source == "archive" and args.format not in ARCHIVE_SOURCED:
        print(
            f"error: --source archive goes with {', '.join(ARCHIVE_SOURCED)}, not {args.format}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    path = export_path(args.lock_id, args.format, args.target, args.source)
    try:
        with _client(args) as client:
            response = client.get(path)
    except httpx.HTTPError as exc:
        return _unreachable(args, exc)
    if response.status_code != 200:
        return _refused(response)
    if args.output and args.output != "-":
        Path(args.output).write_bytes(response.content)
    else:
        sys.stdout.buffer.write(response.content)
        sys.stdout.flush()
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    import httpx

    try:
        content = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    body: dict[str, Any] = {"content": content}
    for key in ("format", "platform", "environment"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    try:
        with _client(args) as client:
            response = client.post("/api/v1/locks/import", json=body)
    except httpx.HTTPError as exc:
        return _unreachable(args, exc)
    if response.status_code not in (200, 201):
        return _refused(response)
    imported = response.json()
    print(imported["lock_id"])
    print(imported["links"]["permalink"])
    return EXIT_OK


def _version(p: dict[str, Any]) -> str:
    return f"{p['version']} {p['build']}"


def print_diff(diff: dict[str, Any]) -> None:
    summary = diff["summary"]
    print(
        f"{diff['a'][:12]} -> {diff['b'][:12]}: {summary['added']} added, "
        f"{summary['removed']} removed, {summary['changed']} changed"
    )
    for name, target in sorted(diff["targets"].items()):
        where = {"both": "", "a": " (only in a)", "b": " (only in b)"}[target["in"]]
        print(f"\ntarget {name}{where}")
        for p in target["added"]:
            print(f"  + {p['name']} {_version(p)}")
        for p in target["removed"]:
            print(f"  - {p['name']} {_version(p)}")
        for c in target["changed"]:
            print(f"  ~ {c['name']} {_version(c['from'])} -> {_version(c['to'])}")
        pypi = target.get("pypi") or {}
        for p in pypi.get("added") or []:
            print(f"  + {p['name']} {p['version']} (PyPI)")
        for p in pypi.get("removed") or []:
            print(f"  - {p['name']} {p['version']} (PyPI)")
        for c in pypi.get("changed") or []:
            versions = f"{c['from']['version']} -> {c['to']['version']}"
            print(f"  ~ {c['name']} {versions} (PyPI; {', '.join(c['fields'])})")
        for line in pypi.get("local_added") or []:
            print(f"  + {line} (pip, local, not archived)")
        for line in pypi.get("local_removed") or []:
            print(f"  - {line} (pip, local, not archived)")


def cmd_diff(args: argparse.Namespace) -> int:
    diff, failed = _get_json(args, f"/api/v1/locks/{quote(args.a)}/diff/{quote(args.b)}")
    if failed is not None:
        return failed
    if args.json:
        print(json.dumps(diff, indent=2, sort_keys=True))
    else:
        print_diff(diff)
    return EXIT_OK


def _match(m: dict[str, Any]) -> str:
    if m.get("source") == "pypi":
        return f"{m['name']} {m['version']} (PyPI)"
    return f"{m['name']} {m['version']} {m['build']}"


def print_locks(page: dict[str, Any], server: str) -> None:
    """A page of locks as a table, newest first, and where the next page is."""
    items = page["items"]
    if not items:
        print("no locks found", file=sys.stderr)
        return
    matching = any(item.get("matches") is not None for item in items)
    header = f"{'lock':<12}  {'created':<20}  {'name':<20}  {'targets':<28}"
    print(header + ("  matches" if matching else "  channels"))
    for item in items:
        targets = ",".join(sorted(item.get("targets") or {}))
        row = (
            f"{item['id'][:12]:<12}  {(item.get('created_at') or '-')[:20]:<20}  "
            f"{(item.get('name') or '-')[:20]:<20}  {targets:<28}"
        )
        if matching:
            found = sorted({_match(m) for m in item.get("matches") or []})
            print(f"{row}  {'; '.join(found)}")
        else:
            print(f"{row}  {' '.join(item.get('channels') or [])}")
    shown = page["offset"] + len(items)
    if shown < page["total"]:
        print(f"{len(items)} of {page['total']} shown; --offset {shown} for more", file=sys.stderr)
    print(f"lock pages: {server}/l/<lock>", file=sys.stderr)


def _page_of_locks(args: argparse.Namespace, params: dict[str, Any]) -> int:
    query = urlencode({**params, "limit": args.limit, "offset": args.offset})
    return _get_and_print(args, f"/api/v1/locks?{query}", print_locks)


def cmd_list(args: argparse.Namespace) -> int:
    return _page_of_locks(args, {})


def cmd_search(args: argparse.Namespace) -> int:
    params = {"package": args.package}
    if args.version:
        params["version"] = args.version
    return _page_of_locks(args, params)


def _common(parser: argparse.ArgumentParser) -> None:
    add_server_argument(parser)
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the server")


def register(sub: Any) -> None:
    """Add lock, show, export, import, diff, list and search to the `condarchive` subparsers."""
    lock = sub.add_parser("lock", help="solve an environment and print its lock id and link")
    lock.add_argument("file", nargs="?", help="environment.yml (or - for stdin)")
    lock.add_argument("--spec", action="append", help="a match spec (instead of a file)")
    lock.add_argument(
        "-c",
        "--channel",
        action="append",
        help="channel for --spec; with a file, replaces the file's channels (as conda-lock's)",
    )
    lock.add_argument(
        "-t",
        "--target",
        action="append",
        help="linux-64, linux-64-cuda12, or NAME=PLATFORM:__cuda=12.4,__glibc=2.28",
    )
    lock.add_argument("--exclude-newer", help="ISO time: solve as the channels stood then")
    lock.add_argument(
        "--channel-priority", default="strict", choices=["strict", "flexible", "disabled"]
    )
    lock.add_argument("--pip", action="append", help="a PyPI requirement line (with --spec)")
    lock.add_argument("--title", help="the environment's title, for its citation")
    lock.add_argument(
        "--author",
        action="append",
        help='an author, "Given Family" or "Family, Given" (repeat for several)',
    )
    lock.add_argument("--description", help="a sentence on what the environment is for")
    lock.add_argument("-o", "--output", help="write the lock (JSON) to this file")
    add_server_argument(lock)
    lock.add_argument("--timeout", type=float, default=900, help="seconds to wait for the solve")
    lock.set_defaults(func=cmd_lock)

    show = sub.add_parser("show", help="print a lock: targets and packages")
    show.add_argument("lock_id", help="lock id or a unique prefix of 8+ characters")
    show.add_argument("--json", action="store_true", help="print the lock JSON instead")
    _common(show)
    show.set_defaults(func=cmd_show)

    export = sub.add_parser(
        "export", help="write a lock in a lockfile format, an SBOM or a Dockerfile"
    )
    export.add_argument("lock_id", help="lock id or a unique prefix of 8+ characters")
    export.add_argument(
        "-f",
        "--format",
        required=True,
        choices=EXPORT_FORMATS,
        help="conda-lock, pixi (whole lock); env, explicit, requirements (pip --require-hashes), "
        "pylock (PEP 751), sbom (CycloneDX 1.6), dockerfile (micromamba) for one --target. "
        "`condarchive bundle` downloads a target's offline bundle",
    )
    export.add_argument(
        "-t",
        "--target",
        help="target name (per-target formats; env needs it when the lock has several)",
    )
    export.add_argument(
        "--source",
        choices=("upstream", "archive"),
        default="upstream",
        help="archive: URLs point at this server's archive (explicit, requirements, pylock)",
    )
    export.add_argument("-o", "--output", help="file to write (default stdout)")
    _common(export)
    export.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", help="archive an explicit file, conda-lock.yml or pixi.lock")
    imp.add_argument("file", help="the lockfile (or - for stdin)")
    imp.add_argument("--format", choices=("explicit", "conda-lock", "pixi"), help="default: detect")
    imp.add_argument("--platform", help="explicit files without a '# platform:' line")
    imp.add_argument("--environment", help="pixi.lock: which environment (default 'default')")
    _common(imp)
    imp.set_defaults(func=cmd_import)

    diff = sub.add_parser("diff", help="packages added, removed and changed from lock A to B")
    diff.add_argument("a", help="lock id or prefix")
    diff.add_argument("b", help="lock id or prefix")
    diff.add_argument("--json", action="store_true", help="print the diff JSON instead")
    _common(diff)
    diff.set_defaults(func=cmd_diff)

    listing = sub.add_parser("list", help="recent locks, newest first")
    search = sub.add_parser("search", help="locks holding a package (at a version spec)")
    search.add_argument("package", help="conda or PyPI package name, e.g. numpy")
    search.add_argument("version", nargs="?", help="conda version spec, e.g. '2.5.*' or '>=1.26'")
    for parser, func in ((listing, cmd_list), (search, cmd_search)):
        parser.add_argument("--limit", type=int, default=50, help="locks per page (1-200)")
        parser.add_argument("--offset", type=int, default=0, help="skip this many (next page)")
        parser.add_argument("--json", action="store_true", help="print the page JSON instead")
        _common(parser)
        parser.set_defaults(func=func)
