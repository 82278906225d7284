"""The PyPI pull-through mirror: with ``CONDARCHIVE_PROXY_PYPI`` set, ``/pypi/simple/{name}/``
lists what the proxied indexes list (merged with the archived files they no longer do),
and each listed file's URL (``/pypi/files/{sha256}/{filename}``) is fetched, verified
against the listed sha256 (and size, when listed), stored and recorded as archived on its
first request, then served from the archive ever after.

``CONDARCHIVE_PROXY_PYPI=1`` proxies the default index (``CONDARCHIVE_DEFAULT_PYPI_INDEX``);
a comma-separated list proxies those indexes, searched in order, first index with the
project wins (as uv does, so a later index cannot shadow a project: dependency
confusion). Every index and file URL must pass ``CONDARCHIVE_ALLOWED_PYPI_INDEXES``.
Upstream pages are not cached: a client asking for a page waits on upstream, or, when
upstream fails, gets the archived files alone.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app.archive.blobs import Expected, get_store
from app.archive.download import FetchError, fetch_to_store, policy_from
from app.archive.pypi_run import pypi_client
from app.archive.pypi_state import ensure_pypi_entries, mark_pypi_archived
from app.archive.pypi_views import normalize
from app.config import Settings
from app.core.pypi_spec import PyPIPolicy, index_refusal
from app.db.models import PyPIFile
from app.db.session import insert_ignore, session_scope
from app.locks.pypi_records import InvalidPyPIPackage, LockedPyPIPackage, is_plain_filename

log = logging.getLogger(__name__)

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
_SDIST = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)\.(tar\.gz|zip)$")


class PyPIProxyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class UpstreamFile:
    filename: str
    url: str
    sha256: str
    size: int | None
    requires_python: str | None
    yanked: bool | str
    index: str


def proxied_indexes(settings: Settings) -> list[str]:
    """The indexes ``CONDARCHIVE_PROXY_PYPI`` names (none when it is unset or off)."""
    value = settings.proxy_pypi.strip()
    if value.lower() in ("", "0", "false", "off", "no"):
        return []
    if value.lower() in ("1", "true", "on", "yes"):
        return [settings.default_pypi_index.rstrip("/")]
    return [entry.strip().rstrip("/") for entry in value.split(",") if entry.strip()]


def project_of(filename: str) -> str | None:
    """The normalised project a wheel or sdist filename belongs to."""
    if filename.endswith(".whl"):
        return normalize(filename.split("-", 1)[0])
    match = _SDIST.match(filename)
    return normalize(match["name"]) if match else None


def version_of(filename: str) -> str:
    if filename.endswith(".whl"):
        parts = filename.split("-")
        return parts[1] if len(parts) > 1 else ""
    match = _SDIST.match(filename)
    return match["version"] if match else ""


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            attributes = dict(attrs)
            self.links.append(attributes)


def parse_page(page_url: str, body: bytes, content_type: str, index: str) -> list[UpstreamFile]:
    """The files of a PEP 691 JSON or PEP 503 HTML project page (those with a sha256)."""
    files: list[UpstreamFile] = []
    if content_type.split(";")[0].strip() == JSON_TYPE:
        for item in json.loads(body).get("files", []):
            sha256 = (item.get("hashes") or {}).get("sha256")
            if not sha256 or not is_plain_filename(str(item.get("filename"))):
                continue
            files.append(
                UpstreamFile(
                    item["filename"],
                    urljoin(page_url, item["url"]),
                    sha256,
                    item.get("size"),
                    item.get("requires-python"),
                    item.get("yanked") or False,
                    index,
                )
            )
        return files
    anchors = _Anchors()
    anchors.feed(body.decode("utf-8", "replace"))
    for link in anchors.links:
        href = link.get("href") or ""
        parts = urlsplit(href)
        if not parts.fragment.startswith("sha256="):
            continue
        if not is_plain_filename(parts.path.rsplit("/", 1)[-1]):
            continue
        url = urljoin(page_url, href.split("#", 1)[0])
        yanked: bool | str = False
        if "data-yanked" in link:
            yanked = link.get("data-yanked") or True
        files.append(
            UpstreamFile(
                parts.path.rsplit("/", 1)[-1],
                url,
                parts.fragment.split("=", 1)[1],
                None,
                link.get("data-requires-python"),
                yanked,
                index,
            )
        )
    return files


async def upstream_files(settings: Settings, project: str) -> list[UpstreamFile] | None:
    """The first proxied index's files of `project`; None when no index has it.

    Raises PyPIProxyError when an index cannot be reached (502)."""
    policy = PyPIPolicy.of(settings)
    async with pypi_client(settings, 1) as client:
        for index in proxied_indexes(settings):
            url = f"{index}/{project}/"
            if (refusal := index_refusal(url, policy)) is not None:
                raise PyPIProxyError(502, f"proxied index refused: {refusal}")
            try:
                page = await _read_page(client, url)
            except httpx.HTTPError as exc:
                raise PyPIProxyError(502, f"{url}: {type(exc).__name__}: {exc}") from exc
            if page is None:
                continue
            page_url, body, content_type = page
            try:
                return parse_page(page_url, body, content_type, index)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise PyPIProxyError(502, f"{url}: unreadable project page: {exc!r}") from exc
    return None


#: Bytes of one upstream project page read at most (PyPI's largest are a few MB).
MAX_PROJECT_PAGE = 32 * 1024 * 1024


async def _read_page(client: httpx.AsyncClient, url: str) -> tuple[str, bytes, str] | None:
    """(final URL, body, content type) of a project page, None when upstream has none;
    streamed, and refused past MAX_PROJECT_PAGE bytes."""
    async with client.stream("GET", url, headers={"Accept": ACCEPT}) as response:
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise PyPIProxyError(502, f"{url}: upstream answered HTTP {response.status_code}")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_PROJECT_PAGE:
                raise PyPIProxyError(502, f"{url}: project page over {MAX_PROJECT_PAGE} bytes")
        return str(response.url), bytes(body), response.headers.get("content-type", "")


def _record(file: UpstreamFile, size: int, info: Any) -> None:
    """The PyPIFile row of a proxied file, and its archived entry."""
    package = LockedPyPIPackage(
        name=project_of(file.filename) or file.filename,
        version=version_of(file.filename),
        url=file.url,
        filename=file.filename,
        sha256=file.sha256,
        size=size,
        requires_python=file.requires_python,
        kind="index",
        index=file.index,
    )
    row = {
        "record_key": package.record_key,
        "name": package.name,
        "version": package.version,
        "url": package.url,
        "filename": package.filename,
        "sha256": package.sha256,
        "size": package.size,
        "record": package.canonical(),
    }
    with session_scope() as session:
        insert_ignore(session, PyPIFile, [row])
        pid = session.scalars(
            select(PyPIFile.id).where(PyPIFile.record_key == package.record_key)
        ).one()
        ensure_pypi_entries(session, [pid])
        session.commit()
        mark_pypi_archived(session, pid, info)


async def fetch_file(settings: Settings, sha256: str, filename: str) -> bool:
    """Fetch, verify and store a file a proxied index lists with this sha256; True when
    it is archived now, False when no proxied index lists it."""
    project = project_of(filename)
    if project is None:
        return False
    files = await upstream_files(settings, project)
    match = next((f for f in files or [] if f.filename == filename and f.sha256 == sha256), None)
    if match is None:
        return False
    if (refusal := index_refusal(match.url, PyPIPolicy.of(settings))) is not None:
        raise PyPIProxyError(502, f"refused to fetch {refusal}")
    store = get_store()
    policy = policy_from(settings)
    async with pypi_client(settings, 1) as client:
        try:
            info, _created = await fetch_to_store(
                client, match.url, Expected(sha256, None, match.size), store, policy
            )
        except FetchError as exc:
            raise PyPIProxyError(502, str(exc)) from exc
    try:
        await run_in_threadpool(_record, match, info.size, info)
    except InvalidPyPIPackage as exc:  # a name or version the index should not list
        raise PyPIProxyError(502, f"{match.url}: not recorded: {exc}") from exc
    return True
