"""The archive's PyPI files as a simple index: ``/pypi/simple/`` (PEP 503 HTML, PEP 691
JSON by content negotiation) and ``/pypi/files/{sha256}/{filename}``.

So ``pip install --index-url <server>/pypi/simple/ --require-hashes -r requirements.txt``
installs a lock's PyPI part after its index deleted the release. Every archived file is
listed under its project, with a ``#sha256=`` fragment (HTML) or ``hashes`` (JSON); its
URL is by content, so it serves exactly the bytes listed. A name that is not normalised
redirects to the normalised one (PEP 503), as does a missing trailing slash.
"""

from __future__ import annotations

import html
import json
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from app.archive.blobs import get_store
from app.archive.pypi_proxy import (
    PyPIProxyError,
    UpstreamFile,
    fetch_file,
    proxied_indexes,
    upstream_files,
    version_of,
)
from app.archive.pypi_views import (
    ArchivedPyPIFile,
    archived_project_files,
    archived_projects,
    archived_pypi_blob,
    normalize,
)
from app.core.etag import etag_of
from app.db.session import session_scope
from app.web.deps import SettingsDep
from app.web.http_cache import IMMUTABLE, none_match
from app.web.responses import PYPI_FILE, SIMPLE_PAGE

router = APIRouter(prefix="/pypi", tags=["pypi"])

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
#: PEP 691 api-version; 1.1 adds the PEP 700 ``versions`` and ``size``.
API_VERSION = "1.1"

ProjectPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=255)]
Sha256Path = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
FilenamePath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$", max_length=512)]


def wants_json(accept: str) -> bool:
    """PEP 691 negotiation: JSON when it has the best quality on offer (HTML otherwise,
    and when the client names neither)."""
    best_json, best_html = 0.0, 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if media == JSON_TYPE:
            best_json = max(best_json, quality)
        elif media in (HTML_TYPE, "text/html", "*/*"):
            best_html = max(best_html, quality)
    return best_json > 0 and best_json >= best_html


def _page(request: Request, body: bytes, as_json: bool) -> Response:
    etag = etag_of(body)
    headers = {"ETag": etag, "Vary": "Accept", "Cache-Control": "public, max-age=60"}
    if none_match(request, etag):
        return Response(status_code=304, headers=headers)
    media = JSON_TYPE if as_json else "text/html; charset=utf-8"
    return Response(content=body, media_type=media, headers=headers)


#: From a project page (``/pypi/simple/{project}/``) to the files: relative, so the links
#: work under whatever host and prefix the client reached the index (PEP 503 and 691
#: allow relative URLs; pip and uv resolve them against the page).
FILES = "../../files"


def _projects() -> list[str]:
    with session_scope() as session:
        return archived_projects(session)


def _files(project: str) -> list[ArchivedPyPIFile]:
    with session_scope() as session:
        return archived_project_files(session, project)


@router.api_route("/simple/", methods=["GET", "HEAD"], responses=SIMPLE_PAGE)
async def simple_root(request: Request) -> Response:
    """Every project with an archived file."""
    projects = await run_in_threadpool(_projects)
    if wants_json(request.headers.get("accept", "")):
        body = json.dumps(
            {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in projects]}
        ).encode()
        return _page(request, body, True)
    links = "".join(f'<a href="{html.escape(p)}/">{html.escape(p)}</a>\n' for p in projects)
    body = (
        '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" '
        f'content="{API_VERSION}"><title>Simple index</title></head><body>\n{links}'
        "</body></html>\n"
    ).encode()
    return _page(request, body, False)


@router.api_route("/simple", methods=["GET", "HEAD"], include_in_schema=False)
async def simple_root_slash() -> Response:
    return RedirectResponse("/pypi/simple/", status_code=301)


@router.api_route("/simple/{project}", methods=["GET", "HEAD"], include_in_schema=False)
async def simple_project_slash(project: ProjectPath) -> Response:
    return RedirectResponse(f"/pypi/simple/{normalize(project)}/", status_code=301)


@router.api_route("/simple/{project}/", methods=["GET", "HEAD"], responses=SIMPLE_PAGE)
async def simple_project(project: ProjectPath, request: Request, settings: SettingsDep) -> Response:
    """The archived files of one project (a non-normalised name redirects); with
    CONDARCHIVE_PROXY_PYPI, what the proxied index lists too (app/archive/pypi_proxy.py)."""
    name = normalize(project)
    if name != project:
        return RedirectResponse(f"/pypi/simple/{name}/", status_code=301)
    archived = await run_in_threadpool(_files, name)
    files: list[ArchivedPyPIFile | UpstreamFile] = list(archived)
    if proxied_indexes(settings):
        try:
            upstream = await upstream_files(settings, name)
        except PyPIProxyError as exc:
            if not archived:
                return JSONResponse(status_code=exc.status, content={"detail": exc.message})
            upstream = None  # upstream failed: the archived files alone
        if upstream:
            listed = {f.filename for f in upstream}
            files = [*upstream, *(f for f in archived if f.filename not in listed)]
            files.sort(key=lambda f: f.filename)
    if not files:
        return JSONResponse(
            status_code=404, content={"detail": f"no archived PyPI files of {name!r}"}
        )
    if wants_json(request.headers.get("accept", "")):
        body = json.dumps(
            {
                "meta": {"api-version": API_VERSION},
                "name": name,
                "versions": sorted({_version(f) for f in files}),
                "files": [
                    _without_none(
                        {
                            "filename": f.filename,
                            "url": f"{FILES}/{f.sha256}/{quote(f.filename)}",
                            "hashes": {"sha256": f.sha256},
                            "requires-python": f.requires_python,
                            "size": f.size,
                            "yanked": getattr(f, "yanked", False),
                        }
                    )
                    for f in files
                ],
            }
        ).encode()
        return _page(request, body, True)
    links = []
    for f in files:
        attributes = ""
        if f.requires_python:
            attributes = f' data-requires-python="{html.escape(f.requires_python)}"'
        yanked = getattr(f, "yanked", False)
        if yanked:
            reason = yanked if isinstance(yanked, str) else ""
            attributes += f' data-yanked="{html.escape(reason)}"'
        href = html.escape(f"{FILES}/{f.sha256}/{quote(f.filename)}#sha256={f.sha256}")
        links.append(f'<a href="{href}"{attributes}>{html.escape(f.filename)}</a><br/>\n')
    title = f"Links for {html.escape(name)}"
    body = (
        '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" '
        f'content="{API_VERSION}"><title>{title}</title></head><body><h1>{title}</h1>\n'
        f"{''.join(links)}</body></html>\n"
    ).encode()
    return _page(request, body, False)


def _without_none(item: dict[str, object]) -> dict[str, object]:
    """PEP 700: ``size`` is an int when present (a proxied HTML page may not give one)."""
    return {k: v for k, v in item.items() if v is not None or k == "requires-python"}


def _version(file: ArchivedPyPIFile | UpstreamFile) -> str:
    return file.version if isinstance(file, ArchivedPyPIFile) else version_of(file.filename)


def _is_archived(sha256: str, filename: str) -> bool:
    with session_scope() as session:
        return archived_pypi_blob(session, sha256, filename)


@router.api_route("/files/{sha256}/{filename}", methods=["GET", "HEAD"], responses=PYPI_FILE)
async def pypi_file(
    sha256: Sha256Path, filename: FilenamePath, request: Request, settings: SettingsDep
) -> Response:
    """Exactly the archived blob `sha256`, under the filename it was archived as (fetched,
    verified and archived first when a proxied index lists it)."""
    archived = await run_in_threadpool(_is_archived, sha256, filename)
    if not archived and proxied_indexes(settings):
        try:
            archived = await fetch_file(settings, sha256, filename)
        except PyPIProxyError as exc:
            return JSONResponse(status_code=exc.status, content={"detail": exc.message})
    if not archived:
        return JSONResponse(
            status_code=404,
            content={"detail": f"no archived PyPI file {filename} with sha256 {sha256}"},
        )
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
        return JSONResponse(
            status_code=500,
            content={"detail": f"blob {sha256} of {filename} is missing from the store"},
        )
    return FileResponse(path, media_type="application/octet-stream", headers=headers)
