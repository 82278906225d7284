"""`condarchive show | export | import | diff`: reading and moving locks over HTTP.

Like `condarchive lock`, these talk to a running server (``--server``, default the
configured public URL), so they work the same against a local or a shared service.
Exit codes follow app/cli/__init__.py: 0 done, 1 failed (unknown lock, unreachable server),
2 usage (bad arguments, or input the server refused with 422).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXPORT_FORMATS = ("conda-lock", "explicit", "pixi", "env")


def _server(args: argparse.Namespace) -> str:
    if args.server:
        return args.server.rstrip("/")
    from app.config import get_settings

    return get_settings().base_url


def _client(args: argparse.Namespace) -> Any:
    import httpx

    from app.auth.client import auth_headers

    # JSON errors; lockfile downloads are the same whatever the Accept header says.
    return httpx.Client(
        base_url=_server(args),
        timeout=args.timeout,
        follow_redirects=True,
        headers={"Accept": "application/json", **auth_headers()},
    )


def _refused(response: Any) -> int:
    """Print why the server said no; return the exit code that fits."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text.strip()
    if isinstance(detail, list):
        for item in detail:
            print(f"error: {item.get('msg')}", file=sys.stderr)
    else:
        print(f"error: {detail} (HTTP {response.status_code})", file=sys.stderr)
    return EXIT_USAGE if response.status_code in (400, 422) else EXIT_FAILED


def _unreachable(args: argparse.Namespace, exc: Exception) -> int:
    print(f"error: cannot reach condarchive at {_server(args)}: {exc}", file=sys.stderr)
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


def cmd_show(args: argparse.Namespace) -> int:
    lock, failed = _get_json(args, f"/l/{quote(args.lock_id)}.json")
    if failed is not None:
        return failed
    if args.json:
        print(json.dumps(lock, indent=2, sort_keys=True))
    else:
        _print_lock(lock, _server(args))
    return EXIT_OK


def export_path(lock_id: str, fmt: str, target: str | None) -> str:
    """The permalink path of one format (the same URLs the lock page links)."""
    base = f"/l/{quote(lock_id)}"
    if fmt == "explicit":
        return f"{base}/explicit/{quote(target or '')}.txt"
    if fmt == "env":
        return f"{base}/environment.yml" + (f"?target={quote(target)}" if target else "")
    return f"{base}/{'conda-lock.yml' if fmt == 'conda-lock' else 'pixi.lock'}"


def cmd_export(args: argparse.Namespace) -> int:
    import httpx

    if args.format == "explicit" and not args.target:
        print("error: --format explicit needs --target", file=sys.stderr)
        return EXIT_USAGE
    try:
        with _client(args) as client:
            response = client.get(export_path(args.lock_id, args.format, args.target))
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


def cmd_diff(args: argparse.Namespace) -> int:
    diff, failed = _get_json(args, f"/api/v1/locks/{quote(args.a)}/diff/{quote(args.b)}")
    if failed is not None:
        return failed
    if args.json:
        print(json.dumps(diff, indent=2, sort_keys=True))
    else:
        print_diff(diff)
    return EXIT_OK


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server", help="condarchive URL (default CONDARCHIVE_PUBLIC_URL or local)"
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the server")


def add_lock_commands(sub: Any) -> None:
    """Register show, export, import and diff on the `condarchive` subparsers."""
    show = sub.add_parser("show", help="print a lock: targets and packages")
    show.add_argument("lock_id", help="lock id or a unique prefix of 8+ characters")
    show.add_argument("--json", action="store_true", help="print the lock JSON instead")
    _common(show)
    show.set_defaults(func=cmd_show)

    export = sub.add_parser("export", help="write a lock as conda-lock, explicit, pixi or env")
    export.add_argument("lock_id", help="lock id or a unique prefix of 8+ characters")
    export.add_argument("-f", "--format", required=True, choices=EXPORT_FORMATS)
    export.add_argument("-t", "--target", help="target name (explicit and env formats)")
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
