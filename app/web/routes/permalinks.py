"""`/l/{id}`: the permalink a paper cites, its page, its JSON, and every lockfile format.

A full id answers directly; a unique prefix (8+ hex characters) redirects to the full
id (307, not cached: a later lock may share the prefix); an ambiguous prefix answers 300
with the candidates; anything else a 404 page. Lockfiles and the JSON are immutable and
served so; pages are cached briefly, since they also depend on the deployment.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from app.archive.views import archive_status, archived_urls, with_archive_urls
from app.db.models import Lock
from app.locks.diff import diff_locks
from app.locks.document import lock_document
from app.locks.formats import FORMATS, CannotExpress, UnknownTarget, formats_for, render
from app.locks.refs import resolve
from app.locks.store import count_requests, lock_requests, lock_view
from app.web.deps import SessionDep, SettingsDep
from app.web.http_cache import IMMUTABLE, SHORT, cached
from app.web.lock_lookup import ambiguous, find, message, not_found
from app.web.lock_page import Links, bibtex, citation_cff, citing_request, page_context
from app.web.negotiation import prefers_json
from app.web.templating import render_page

router = APIRouter(tags=["permalinks"])

#: HEAD too: link checkers (and citation managers) probe permalinks without a body.
READ = ["GET", "HEAD"]


def json_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def lock_json(request: Request, document: dict[str, Any], vary: bool = False) -> Response:
    """The lock document as JSON, immutable: it holds no archive status, which can change."""
    headers = {"Vary": "Accept"} if vary else {}
    return cached(request, json_bytes(document), "application/json", IMMUTABLE, headers)


def download(
    request: Request,
    session: Session,
    ref: str,
    suffix: str,
    fmt: str,
    target: str | None,
    filename: str,
    base_url: str,
    job: str | None = None,
) -> Response:
    """One lockfile format of the lock, immutable, or a 4xx that says what to do instead.

    With `job`, the file is rendered for that request (environment.yml then carries the
    name it gave); the job must be one that produced this lock.
    """
    found = _lock_as_asked(request, session, ref, suffix, job)
    if isinstance(found, Response):
        return found
    lock, document = found
    links = Links(f"{base_url}/l/{lock.id}", job)
    try:
        body = render(fmt, document, target)
    except UnknownTarget as exc:
        link_of = {
            "explicit": links.explicit,
            "requirements": links.requirements,
            "pylock": links.pylock,
        }.get(fmt, links.environment_yml)
        choices = [(name, link_of(name)) for name in exc.available]
        return message(request, 404 if target else 400, "Choose a target", exc.message, choices)
    except CannotExpress as exc:
        able = formats_for(document)
        alternatives = [("pixi.lock", links.pixi), ("lock JSON", links.json)]
        alternatives += [
            (f"explicit/{t}.txt", links.explicit(t)) for t in sorted(document["targets"])
        ]
        return message(
            request,
            409,
            f"This lock cannot be written as {exc.format}",
            f"{exc.message}. Formats that can express it: {', '.join(able)}.",
            alternatives,
        )
    disposition = {"Content-Disposition": f'inline; filename="{filename}"'}
    return cached(request, body, FORMATS[fmt].media_type, IMMUTABLE, disposition)


def _lock_as_asked(
    request: Request, session: Session, ref: str, suffix: str, job: str | None
) -> tuple[Lock, dict[str, Any]] | Response:
    """The lock `ref` names and its document, carrying job `job`'s request when one is
    given; or the response (redirect, 300, 404) that answers instead."""
    lock = find(request, session, ref, suffix)
    if isinstance(lock, Response):
        return lock
    document = lock_document(session, lock)
    if job is not None:
        asked = _job_request(request, session, lock.id, job)
        if isinstance(asked, Response):
            return asked
        document["request"] = asked
    return lock, document


def _job_request(
    request: Request, session: Session, lock_id: str, job: str
) -> dict[str, Any] | Response:
    """The request of job `job` that produced this lock, or the 404 that says it did not."""
    found = lock_requests(session, lock_id, job_id=job, limit=1)
    if not found:
        return message(
            request,
            404,
            "No such request",
            f"Job {job[:64]!r} did not produce lock {lock_id}; the lock's page lists the "
            "requests that did.",
            [("the lock", f"/l/{lock_id}")],
        )
    return found[0]


def explicit_from_archive(
    request: Request, session: Session, ref: str, target: str, base_url: str
) -> Response:
    """`/l/{id}/explicit/{target}.txt?source=archive`: the explicit file with archive URLs.

    Answers 409 (with the archive status link) while any package of the target is not
    archived, rather than hand out URLs that do not resolve. Cached briefly: the bytes
    depend on this deployment's base URL, unlike the upstream rendering.
    """
    lock = find(request, session, ref, f"/explicit/{quote(target)}.txt")
    if isinstance(lock, Response):
        return lock
    document = lock_document(session, lock)
    status_url = f"{base_url}/api/v1/locks/{lock.id}/archive"
    urls = archived_urls(session, lock.id, base_url)
    packages = (document["targets"].get(target) or {}).get("packages", [])
    missing = sorted(p["filename"] for p in packages if p["url"] not in urls)
    if missing:
        return message(
            request,
            409,
            "Not archived yet",
            f"{len(missing)} package(s) of target {target} are not in the archive: "
            f"{', '.join(missing)}. See the archive status, or ask for the archive with "
            f"POST {status_url}.",
            [("archive status", status_url)],
        )
    try:
        body = render("explicit", with_archive_urls(document, urls), target)
    except UnknownTarget as exc:
        links = [(n, f"/l/{lock.id}/explicit/{n}.txt?source=archive") for n in exc.available]
        return message(request, 404, "Choose a target", exc.message, links)
    disposition = {"Content-Disposition": f'inline; filename="{target}.txt"'}
    return cached(request, body, FORMATS["explicit"].media_type, SHORT, disposition)


#: The PyPI formats: route suffix and file name of one target's file.
PYPI_FILES = {
    "requirements": ("/requirements/{target}.txt", "{target}.txt"),
    "pylock": ("/pylock/{target}.toml", "pylock.{target}.toml"),
}


def pypi_archive_urls(session: Session, lock_id: str, base_url: str) -> dict[str, str] | None:
    """Original URL -> archive URL of the lock's archived PyPI files, or None when this
    deployment has no PyPI archive (app/archive/pypi_views.py)."""
    try:
        from app.archive import pypi_views
    except ImportError:
        return None
    return pypi_views.pypi_archive_urls(session, lock_id, base_url)


def pypi_file(
    request: Request,
    session: Session,
    ref: str,
    fmt: str,
    target: str,
    base_url: str,
    source: str,
) -> Response:
    """`requirements/{target}.txt` or `pylock/{target}.toml`, from upstream (immutable) or,
    with ``source=archive``, from the archive's copies (409 naming every file not archived
    yet; cached briefly, the bytes depend on this deployment's base URL)."""
    suffix_pattern, filename_pattern = PYPI_FILES[fmt]
    suffix = suffix_pattern.format(target=quote(target))
    filename = filename_pattern.format(target=target)
    if source != "archive":
        return download(request, session, ref, suffix, fmt, target, filename, base_url)
    lock = find(request, session, ref, suffix)
    if isinstance(lock, Response):
        return lock
    document = lock_document(session, lock)
    links = Links(f"{base_url}/l/{lock.id}")
    if target not in document["targets"]:
        available = sorted(document["targets"])
        choices = [(n, f"{getattr(links, fmt)(n)}?source=archive") for n in available]
        text = f"this lock has no target {target!r}; it has: {', '.join(available)}"
        return message(request, 404, "Choose a target", text, choices)
    status_url = f"{base_url}/api/v1/locks/{lock.id}/archive"
    urls = pypi_archive_urls(session, lock.id, base_url)
    packages = document["targets"][target].get("pypi_packages") or []
    if urls is None and packages:
        return message(
            request,
            409,
            "No PyPI archive",
            f"this deployment does not archive PyPI files yet, so target {target}'s "
            f"{len(packages)} PyPI file(s) can only be fetched upstream.",
            [("upstream URLs", getattr(links, fmt)(target))],
        )
    urls = urls or {}
    missing = sorted(p["filename"] for p in packages if p["url"] not in urls)
    if missing:
        return message(
            request,
            409,
            "Not archived yet",
            f"{len(missing)} PyPI file(s) of target {target} are not in the archive: "
            f"{', '.join(missing)}. See the archive status, or ask for the archive with "
            f"POST {status_url}.",
            [("archive status", status_url), ("upstream URLs", getattr(links, fmt)(target))],
        )
    body = render(fmt, document, target, urls)
    disposition = {"Content-Disposition": f'inline; filename="{filename}"'}
    return cached(request, body, FORMATS[fmt].media_type, SHORT, disposition)


Source = Annotated[
    Literal["upstream", "archive"], Query(description="archive: URLs point at our archive")
]


@router.api_route(
    "/l/{ref}/requirements/{target}.txt",
    methods=READ,
    summary="One target's PyPI packages for pip install --require-hashes",
)
def permalink_requirements(
    ref: str,
    target: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    source: Source = "upstream",
) -> Response:
    return pypi_file(request, session, ref, "requirements", target, settings.base_url, source)


@router.api_route(
    "/l/{ref}/pylock/{target}.toml",
    methods=READ,
    summary="One target's PyPI packages as a PEP 751 pylock.toml",
)
def permalink_pylock(
    ref: str,
    target: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    source: Source = "upstream",
) -> Response:
    return pypi_file(request, session, ref, "pylock", target, settings.base_url, source)


@router.api_route("/l/{ref}.json", methods=READ, summary="The lock as JSON (immutable)")
def permalink_json(ref: str, request: Request, session: SessionDep) -> Response:
    lock = find(request, session, ref, ".json")
    if isinstance(lock, Response):
        return lock
    return lock_json(request, lock_document(session, lock))


@router.api_route(
    "/l/{ref}/explicit/{target}.txt", methods=READ, summary="@EXPLICIT file for one target"
)
def permalink_explicit(
    ref: str,
    target: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    source: Annotated[
        Literal["upstream", "archive"], Query(description="archive: URLs point at our archive")
    ] = "upstream",
) -> Response:
    if source == "archive":  # the archived copies, not the upstream URLs
        return explicit_from_archive(request, session, ref, target, settings.base_url)
    suffix = f"/explicit/{quote(target)}.txt"
    return download(
        request, session, ref, suffix, "explicit", target, f"{target}.txt", settings.base_url
    )


@router.api_route("/l/{ref}/conda-lock.yml", methods=READ, summary="conda-lock v1 lockfile")
def permalink_conda_lock(
    ref: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    return download(
        request,
        session,
        ref,
        "/conda-lock.yml",
        "conda-lock",
        None,
        "conda-lock.yml",
        settings.base_url,
    )


@router.api_route("/l/{ref}/pixi.lock", methods=READ, summary="pixi.lock (py-rattler LockFile)")
def permalink_pixi(
    ref: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    return download(
        request, session, ref, "/pixi.lock", "pixi", None, "pixi.lock", settings.base_url
    )


@router.api_route(
    "/l/{ref}/environment.yml", methods=READ, summary="Pinned environment.yml for one target"
)
def permalink_environment_yml(
    ref: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    target: Annotated[str | None, Query(description="target name; optional if only one")] = None,
    job: Annotated[
        str | None, Query(description="a job that produced the lock: use the name it gave")
    ] = None,
) -> Response:
    return download(
        request,
        session,
        ref,
        "/environment.yml",
        "env",
        target,
        "environment.yml",
        settings.base_url,
        job,
    )


def citation(
    request: Request,
    session: Session,
    ref: str,
    kind: Literal["cff", "bib"],
    base_url: str,
    job: str | None,
) -> Response:
    """The lock's citation, with the title and authors its request gave (that job's, or
    the newest request's that gave any). Cached briefly: a later request may add them."""
    suffix = "/CITATION.cff" if kind == "cff" else "/citation.bib"
    found = _lock_as_asked(request, session, ref, suffix, job)
    if isinstance(found, Response):
        return found
    lock, document = found
    links = Links(f"{base_url}/l/{lock.id}", job)
    citing = citing_request(document, lock_requests(session, lock.id))
    if kind == "cff":
        body, media, filename = (
            citation_cff(document, links, citing),
            "application/x-yaml",
            "CITATION.cff",
        )
    else:
        body, media, filename = (
            bibtex(document, links, citing),
            "application/x-bibtex",
            f"condarchive-{lock.id[:12]}.bib",
        )
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return cached(request, (body + "\n").encode(), f"{media}; charset=utf-8", SHORT, disposition)


JobQuery = Annotated[
    str | None, Query(description="a job that produced the lock: cite it as that request did")
]


@router.api_route(
    "/l/{ref}/CITATION.cff", methods=READ, summary="CITATION.cff (1.2.0) for the lock"
)
def permalink_cff(
    ref: str, request: Request, session: SessionDep, settings: SettingsDep, job: JobQuery = None
) -> Response:
    return citation(request, session, ref, "cff", settings.base_url, job)


@router.api_route("/l/{ref}/citation.bib", methods=READ, summary="BibTeX entry for the lock")
def permalink_bib(
    ref: str, request: Request, session: SessionDep, settings: SettingsDep, job: JobQuery = None
) -> Response:
    return citation(request, session, ref, "bib", settings.base_url, job)


@router.get("/l/{ref}/diff", include_in_schema=False)
def permalink_diff_form(ref: str, request: Request, other: str = "") -> Response:
    """The lock page's compare form lands here; send it on to the diff page."""
    other = other.strip().lower()
    if not other:
        return message(request, 400, "Nothing to compare", "Give another lock id to compare with.")
    return RedirectResponse(f"/l/{quote(ref)}/diff/{quote(other)}", status_code=303)


@router.api_route(
    "/l/{a}/diff/{b}", methods=READ, summary="What changed from lock a to lock b (page or JSON)"
)
def permalink_diff(a: str, b: str, request: Request, session: SessionDep) -> Response:
    found_a, found_b = resolve(session, a), resolve(session, b)
    for ref, found in ((a, found_a), (b, found_b)):
        if found.ambiguous:
            return ambiguous(request, ref, found.candidates, "")
        if found.lock is None:
            return not_found(request, ref)
    assert found_a.lock is not None and found_b.lock is not None
    full_a, full_b = found_a.lock.id, found_b.lock.id
    if (a, b) != (full_a, full_b):
        return RedirectResponse(
            f"/l/{full_a}/diff/{full_b}", status_code=307, headers={"Cache-Control": "no-cache"}
        )
    diff = diff_locks(lock_view(session, found_a.lock), lock_view(session, found_b.lock))
    if prefers_json(request):
        return cached(request, json_bytes(diff), "application/json", IMMUTABLE, {"Vary": "Accept"})
    html = render_page("diff.html", diff=diff).encode()
    return cached(request, html, "text/html; charset=utf-8", SHORT, {"Vary": "Accept"})


@router.api_route(
    "/l/{ref}",
    methods=READ,
    summary="The lock's page (HTML), or its JSON with Accept: application/json",
)
def permalink(
    ref: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    job: Annotated[
        str | None, Query(description="show the lock as this job (one request) produced it")
    ] = None,
) -> Response:
    lock = find(request, session, ref)
    if isinstance(lock, Response):
        return lock
    document = lock_document(session, lock)
    if prefers_json(request):
        return lock_json(request, document, vary=True)
    if job is not None:  # the visitor came from this request: its spec, its name
        asked = _job_request(request, session, lock.id, job)
        if isinstance(asked, Response):
            return asked
        document["request"] = asked
        requests, count = [asked], 1
    else:  # every request that produced the lock, each with its own spec
        requests, count = lock_requests(session, lock.id), count_requests(session, lock.id)
    # The archive status changes as packages are archived, and requests are added.
    document["archive"] = archive_status(session, lock.id, settings.base_url)
    context = page_context(document, settings.base_url, requests, count, job)
    html = render_page("lock.html", **context).encode()
    return cached(request, html, "text/html; charset=utf-8", SHORT, {"Vary": "Accept"})
