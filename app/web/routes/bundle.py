"""`/l/{id}/bundle/{target}.tar`: one target's offline bundle (app/archive/bundle.py).

Streamed with its length known up front, and a strong ETag from the bundle's plan (the
names, sizes and sha256s of its members), so a client can resume or revalidate without
the server reading any blob. 409 names the files not archived yet.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from app.archive.blobs import get_store
from app.archive.bundle import NotArchived, plan_bundle
from app.locks.document import lock_document
from app.locks.store import lock_requests
from app.web.deps import SessionDep, SettingsDep
from app.web.http_cache import IMMUTABLE, none_match
from app.web.lock_lookup import find, message
from app.web.lock_page import Links, citation_cff, citing_request

router = APIRouter(tags=["permalinks"])

MEDIA_TYPE = "application/x-tar"


@router.api_route(
    "/l/{ref}/bundle/{target}.tar",
    methods=["GET", "HEAD"],
    summary="An offline bundle of one target: its conda channel, PyPI files, lock, citation",
)
def permalink_bundle(
    ref: str, target: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    lock = find(request, session, ref, f"/bundle/{quote(target)}.tar")
    if isinstance(lock, Response):
        return lock
    document = lock_document(session, lock)
    if target not in document["targets"]:
        choices = [(t, f"/l/{lock.id}/bundle/{quote(t)}.tar") for t in sorted(document["targets"])]
        return message(
            request,
            404,
            "Choose a target",
            f"lock {lock.id[:12]} has no target {target!r}",
            choices,
        )
    # The oldest request that gave citation metadata: later requests cannot change it.
    requests = list(reversed(lock_requests(session, lock.id, limit=200)))
    links = Links(f"{settings.base_url}/l/{lock.id}")

    def citation() -> str:
        return citation_cff(document, links, citing_request(document, requests))

    try:
        plan = plan_bundle(session, document, target, lock.created_at, citation)
    except NotArchived as exc:
        status_url = f"{settings.base_url}/api/v1/locks/{lock.id}/archive"
        return message(
            request,
            409,
            "Not archived yet",
            f"A bundle holds only archived files; {len(exc.filenames)} file(s) of target "
            f"{target} are not in the archive: {', '.join(exc.filenames)}. Ask for the "
            f"archive with POST {status_url}, then try again.",
            [("archive status", status_url)],
        )
    filename = f"{plan.root}.tar"
    headers = {
        "ETag": f'"{plan.etag}"',
        "Cache-Control": IMMUTABLE,
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(plan.content_length),
    }
    if none_match(request, headers["ETag"]):
        del headers["Content-Length"]
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers, media_type=MEDIA_TYPE)
    return StreamingResponse(plan.stream(get_store()), media_type=MEDIA_TYPE, headers=headers)
