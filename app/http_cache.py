"""Strong ETags and conditional GETs for responses whose bytes are fixed.

A lock never changes, so its renderings are served `immutable` for a year; pages mix in
the deployment's templates and base URL, so they are only cached briefly. Both carry a
strong ETag (the body's sha256) and answer `If-None-Match` with 304.
"""

from __future__ import annotations

import hashlib

from fastapi import Request, Response

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest() + '"'


def none_match(request: Request, etag: str) -> bool:
    """True when the client already holds this entity (RFC 9110 If-None-Match, weak compare)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in tags


def cached(
    request: Request,
    body: bytes,
    media_type: str,
    cache_control: str = IMMUTABLE,
    headers: dict[str, str] | None = None,
) -> Response:
    """`body` with ETag and Cache-Control, or an empty 304 if the client's copy matches."""
    etag = etag_of(body)
    all_headers = {"ETag": etag, "Cache-Control": cache_control, **(headers or {})}
    if none_match(request, etag):
        return Response(status_code=304, headers=all_headers)
    return Response(content=body, media_type=media_type, headers=all_headers)
