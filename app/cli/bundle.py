"""`condarchive bundle`: download one target's offline bundle (app/archive/bundle.py).

The tar is streamed to a temporary file beside the output and renamed into place only
once it is complete, so an interrupted download leaves no half bundle behind.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from app.cli.common import EXIT_FAILED, add_server_argument, exit_code_for_status, fail, server_url


def register(sub: argparse._SubParsersAction) -> None:
    bundle = sub.add_parser(
        "bundle", help="download a target's offline bundle (channel, PyPI files, lock, citation)"
    )
    bundle.add_argument("lock_id", help="lock id or a unique prefix of 8+ characters")
    bundle.add_argument("-t", "--target", required=True, help="target name")
    bundle.add_argument("-o", "--output", help="file to write (default: the bundle's own name)")
    add_server_argument(bundle)
    bundle.set_defaults(func=cmd_bundle)


def cmd_bundle(args: argparse.Namespace) -> int:
    import httpx

    from app.auth.client import auth_headers

    url = f"{server_url(args)}/l/{quote(args.lock_id)}/bundle/{quote(args.target)}.tar"
    headers = {"Accept": "application/json", **auth_headers()}
    try:
        with httpx.stream(
            "GET", url, headers=headers, follow_redirects=True, timeout=60
        ) as response:
            if response.status_code != 200:
                response.read()
                try:
                    detail = response.json().get("detail", response.text)
                except ValueError:
                    detail = response.text
                return fail(
                    f"{response.status_code}: {detail}", exit_code_for_status(response.status_code)
                )
            name = _filename(response.headers.get("content-disposition", "")) or "bundle.tar"
            output = Path(args.output or name)
            size = _write(response.iter_bytes(), output)
    except httpx.HTTPError as exc:
        return fail(f"cannot download {url}: {exc}", EXIT_FAILED)
    print(f"{output} ({size} bytes)")
    return 0


def _filename(disposition: str) -> str | None:
    _, _, rest = disposition.partition('filename="')
    name = rest.split('"', 1)[0]
    return os.path.basename(name) or None


def _write(chunks: Iterable[bytes], output: Path) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
    size = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, output)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return size
