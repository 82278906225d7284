"""What a paper can ship beside a lock: its SBOM, a container recipe, and why each package
is there.

``/l/{id}/sbom/{target}.cdx.json`` (CycloneDX 1.6) and ``/l/{id}/Dockerfile?target=T``
are permalink files: a prefix redirects to the full id, an unknown lock or target is a
404 that lists the choices, and the bytes carry a strong ETag. Both name this
deployment's base URL, so they are cached briefly, as the archive's explicit file is.
``/api/v1/locks/{id}/tree?target=T`` is the dependency graph the CLI's `tree` prints;
it reads the requests that produced the lock, which a later request can add to.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, Response

from app.locks.dockerfile import MEDIA_TYPE as DOCKERFILE_TYPE
from app.locks.dockerfile import NotLinux, render_dockerfile
from app.locks.dockerfile import UnknownTarget as NoDockerTarget
from app.locks.document import lock_document
from app.locks.refs import resolve
from app.locks.sbom import MEDIA_TYPE as SBOM_TYPE
from app.locks.sbom import UnknownTarget as NoSbomTarget
from app.locks.sbom import render_sbom
from app.locks.store import lock_requests, lock_view
from app.locks.tree import dependency_tree
from app.web.deps import SessionDep, SettingsDep
from app.web.http_cache import SHORT, cached
from app.web.lock_lookup import find, message
from app.web.responses import NOT_FOUND, error

router = APIRouter(tags=["permalinks"])

READ = ["GET", "HEAD"]


@router.api_route(
    "/l/{ref}/sbom/{target}.cdx.json",
    methods=READ,
    summary="One target's packages as a CycloneDX 1.6 SBOM (JSON)",
)
def permalink_sbom(
    ref: str, target: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    lock = find(request, session, ref, f"/sbom/{quote(target)}.cdx.json")
    if isinstance(lock, Response):
        return lock
    permalink = f"{settings.base_url}/l/{lock.id}"
    try:
        body = render_sbom(lock_document(session, lock), target, permalink)
    except NoSbomTarget as exc:
        choices = [(n, f"/l/{lock.id}/sbom/{quote(n)}.cdx.json") for n in exc.available]
        return message(request, 404, "Choose a target", str(exc), choices)
    disposition = {
        "Content-Disposition": f'inline; filename="lock-{lock.id[:12]}-{target}.cdx.json"'
    }
    return cached(request, body, SBOM_TYPE, SHORT, disposition)


@router.api_route(
    "/l/{ref}/Dockerfile",
    methods=READ,
    summary="A Dockerfile that installs one Linux target from the archive with micromamba",
)
def permalink_dockerfile(
    ref: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    target: Annotated[str | None, Query(description="target name; optional if only one")] = None,
) -> Response:
    lock = find(request, session, ref, "/Dockerfile")
    if isinstance(lock, Response):
        return lock
    document = lock_document(session, lock)
    names = sorted(document["targets"])
    if target is None:
        if len(names) != 1:
            choices = [(n, f"/l/{lock.id}/Dockerfile?target={quote(n)}") for n in names]
            text = f"this lock has {len(names)} targets; choose one: {', '.join(names)}"
            return message(request, 400, "Choose a target", text, choices)
        target = names[0]
    try:
        body = render_dockerfile(document, target, settings.base_url).encode()
    except NoDockerTarget as exc:
        choices = [(n, f"/l/{lock.id}/Dockerfile?target={quote(n)}") for n in exc.available]
        return message(request, 404, "Choose a target", str(exc), choices)
    except NotLinux as exc:
        choices = [(n, f"/l/{lock.id}/Dockerfile?target={quote(n)}") for n in exc.linux_targets]
        return message(request, 409, "Containers run Linux", str(exc), choices)
    disposition = {"Content-Disposition": 'inline; filename="Dockerfile"'}
    return cached(request, body, DOCKERFILE_TYPE, SHORT, disposition)


@router.get(
    "/api/v1/locks/{ref}/tree",
    tags=["locks"],
    responses={
        **NOT_FOUND,
        400: error("the lock has several targets: choose one"),
        409: error("a lock id prefix is ambiguous"),
    },
)
def lock_tree(
    ref: str,
    request: Request,
    session: SessionDep,
    target: Annotated[str | None, Query(description="target name; optional if only one")] = None,
) -> Response:
    """One target's dependency graph: per package what it requires, what requires it, and
    which requested specs pulled it in (from the requests that produced the lock)."""
    found = resolve(session, ref)
    if found.ambiguous:
        detail = f"lock id prefix {ref!r} is ambiguous: {', '.join(found.candidates)}"
        raise HTTPException(status_code=409, detail=detail)
    if found.lock is None:
        raise HTTPException(status_code=404, detail=f"no lock with id {ref!r}")
    lock = found.lock
    view = lock_view(session, lock)
    names = sorted(view["targets"])
    if target is None and len(names) == 1:
        target = names[0]
    if target not in view["targets"]:
        status = 400 if target is None else 404
        asked = "the lock has several targets" if target is None else f"no target {target!r}"
        raise HTTPException(status_code=status, detail=f"{asked}; it has: {', '.join(names)}")
    tree = dependency_tree(view, target, lock_requests(session, lock.id, limit=200))
    body: dict[str, Any] = {"lock_id": lock.id, **tree.view()}
    text = json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return cached(request, text.encode(), "application/json", SHORT)
