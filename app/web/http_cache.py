"""Strong ETags and conditional GETs for responses whose bytes are fixed.

A lock never changes, so its renderings are served `immutable` for a year; pages mix in
the deployment's templates and base URL, so they are only cached briefly. Both carry a
strong ETag (the body's sha256) and answer `If-None-Match` with 304.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from fastapi import Request, Response

from app.core.etag import etag_of

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"


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


class RenderCache:
    """A small LRU of rendered bytes for content that never changes (a lock's JSON).

    Rendering a lock costs a few database queries and a validation pass; a permalink is
    read far more often than it is made, so each process keeps its recent renderings.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._items.get(key)
            if body is not None:
                self._items.move_to_end(key)
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        with self._lock:
            self._items[key] = body
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
