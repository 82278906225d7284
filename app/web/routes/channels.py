"""The archive as conda channels: ``/channels/{channel}/{subdir}/repodata.json[.zst]`` and files.

``{channel}`` is an archive channel name (derived from the upstream URL, see app/archive/naming.py)
or a pull-through proxy name from ``CONDARCHIVE_PROXY_CHANNELS``. Package files are
immutable (served with a strong ETag = their sha256, Range support and a year of caching);
repodata changes as packages are archived, so it gets a short lifetime and conditional GET.
``/channels/{channel}/sha256/{sha256}/...`` serves one blob by content, and is a channel
that lists only it (what a lock's archive URLs point at).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from app.archive.blobs import get_store
from app.archive.naming import channel_name
from app.archive.proxy import ProxyError, get_proxy
from app.archive.repodata import archive_repodata, compress, encode
from app.archive.views import archived_packages, archived_sha256, blob_in_channel, channel_known
from app.config import Settings
from app.core.etag import etag_of
from app.core.filenames import is_package_filename
from app.db.session import session_scope
from app.web.deps import SettingsDep
from app.web.http_cache import IMMUTABLE, none_match

router = APIRouter(tags=["channels"])

SubdirPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=32)]
ChannelPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=160)]
Sha256Path = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


def _not_found(message: str, status: int = 404) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message})


def _repodata_headers(settings: Settings, etag: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": f"public, max-age={settings.repodata_max_age}"}


@lru_cache(maxsize=32)
def _compressed(body: bytes) -> bytes:
    return compress(body)


def _archive_body(channel: str, subdir: str, sha256: str | None = None) -> bytes | None:
    with session_scope() as session:
        if sha256 is not None:
            if not blob_in_channel(session, channel, sha256):
                return None
        elif not channel_known(session, channel):
            return None
        packages = archived_packages(session, channel, subdir, sha256)
        return encode(archive_repodata(subdir, packages))


def _archive_name(channel: str, settings: Settings) -> str:
    """The archive channel behind `channel` (a proxy name serves its upstream's archive)."""
    upstream = settings.proxy_channel_map.get(channel)
    return channel_name(upstream) if upstream else channel


async def _repodata(
    channel: str,
    subdir: str,
    request: Request,
    settings: Settings,
    zst: bool,
    sha256: str | None = None,
) -> Response:
    media_type = "application/octet-stream" if zst else "application/json"
    if sha256 is not None:
        name = _archive_name(channel, settings)
        body = await run_in_threadpool(_archive_body, name, subdir, sha256)
        if body is None:
            return _not_found(f"no archived file with sha256 {sha256} in channel {channel!r}")
        return _listing(body, request, settings, zst)
    if channel in settings.proxy_channel_map:
        try:
            merged = await get_proxy().repodata(channel, subdir)
        except ProxyError as exc:
            return _not_found(exc.message, exc.status)
        etag = merged.zst_etag if zst else merged.json_etag
        headers = _repodata_headers(settings, etag)
        if none_match(request, etag):
            return Response(status_code=304, headers=headers)
        path = merged.zst_path if zst else merged.json_path
        return FileResponse(path, media_type=media_type, headers=headers)
    body = await run_in_threadpool(_archive_body, channel, subdir)
    if body is None:
        return _not_found(f"no archive channel named {channel!r}")
    return _listing(body, request, settings, zst)


def _listing(body: bytes, request: Request, settings: Settings, zst: bool) -> Response:
    media_type = "application/octet-stream" if zst else "application/json"
    if zst:
        body = _compressed(body)
    etag = etag_of(body)
    headers = _repodata_headers(settings, etag)
    if none_match(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type=media_type, headers=headers)


@router.api_route("/channels/{channel}/{subdir}/repodata.json", methods=["GET", "HEAD"])
async def repodata_json(
    channel: ChannelPath, subdir: SubdirPath, request: Request, settings: SettingsDep
) -> Response:
    """Every archived package of the channel subdir (merged with upstream for proxies)."""
    return await _repodata(channel, subdir, request, settings, zst=False)


@router.api_route("/channels/{channel}/{subdir}/repodata.json.zst", methods=["GET", "HEAD"])
async def repodata_json_zst(
    channel: ChannelPath, subdir: SubdirPath, request: Request, settings: SettingsDep
) -> Response:
    """The same listing, zstd-compressed."""
    return await _repodata(channel, subdir, request, settings, zst=True)


@router.api_route(
    "/channels/{channel}/sha256/{sha256}/{subdir}/repodata.json", methods=["GET", "HEAD"]
)
async def content_repodata_json(
    channel: ChannelPath,
    sha256: Sha256Path,
    subdir: SubdirPath,
    request: Request,
    settings: SettingsDep,
) -> Response:
    """The one archived file whose blob is `sha256`, as a channel listing (with its hashes)."""
    return await _repodata(channel, subdir, request, settings, zst=False, sha256=sha256)


@router.api_route(
    "/channels/{channel}/sha256/{sha256}/{subdir}/repodata.json.zst", methods=["GET", "HEAD"]
)
async def content_repodata_json_zst(
    channel: ChannelPath,
    sha256: Sha256Path,
    subdir: SubdirPath,
    request: Request,
    settings: SettingsDep,
) -> Response:
    """The same listing, zstd-compressed."""
    return await _repodata(channel, subdir, request, settings, zst=True, sha256=sha256)


@router.api_route(
    "/channels/{channel}/sha256/{sha256}/{subdir}/{filename}", methods=["GET", "HEAD"]
)
async def content_file(
    channel: ChannelPath,
    sha256: Sha256Path,
    subdir: SubdirPath,
    filename: str,
    request: Request,
    settings: SettingsDep,
) -> Response:
    """Exactly the archived blob `sha256`, under the filename it was archived as."""
    if not is_package_filename(filename):
        return _not_found(f"{filename!r} is not a conda package filename")
    name = _archive_name(channel, settings)
    found = await run_in_threadpool(archived_sha256, name, subdir, filename, sha256)
    if not found:
        return _not_found(f"{channel}/{subdir}/{filename} with sha256 {sha256} is not archived")
    return _send_blob(found, filename, request)


@router.api_route("/channels/{channel}/{subdir}/{filename}", methods=["GET", "HEAD"])
async def package_file(
    channel: ChannelPath,
    subdir: SubdirPath,
    filename: str,
    request: Request,
    settings: SettingsDep,
) -> Response:
    """An archived package file, byte for byte as verified (fetched first for proxies)."""
    if not is_package_filename(filename):
        return _not_found(f"{filename!r} is not a conda package filename")
    if channel in settings.proxy_channel_map:
        try:
            sha256: str | None = await get_proxy().package(channel, subdir, filename)
        except ProxyError as exc:
            return _not_found(exc.message, exc.status)
    else:
        sha256 = await run_in_threadpool(archived_sha256, channel, subdir, filename)
    if not sha256:
        return _not_found(f"{channel}/{subdir}/{filename} is not in the archive")
    return _send_blob(sha256, filename, request)


def _send_blob(sha256: str, filename: str, request: Request) -> Response:
    store = get_store()
    etag = f'"{sha256}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if none_match(request, etag):
        return Response(status_code=304, headers=headers)
    remote = store.url(sha256)
    if remote is not None:
        return RedirectResponse(remote, status_code=302, headers=headers)
    path = store.local_path(sha256)
    if path is None:
        return _not_found(f"blob {sha256} of {filename} is missing from the store", 500)
    return FileResponse(path, media_type="application/octet-stream", headers=headers)
