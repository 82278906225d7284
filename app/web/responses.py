"""Error responses the routes document, so the OpenAPI schema says what a client can meet."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from app.web.limits import LimitErrorView


class ErrorView(BaseModel):
    """An error with one message (401, 403, 404, 409, 503)."""

    detail: str


def error(description: str) -> dict[str, Any]:
    return {"model": ErrorView, "description": description}


#: Routes that need a token when CONDARCHIVE_AUTH=token.
AUTH: dict[int | str, dict[str, Any]] = {
    401: error("no API token, or one that is unknown or revoked"),
    403: error("the API token's scope does not allow this"),
}
#: Routes that take a request body (FastAPI answers 400 to a body that is not JSON).
BODY: dict[int | str, dict[str, Any]] = {
    400: error("the request body is not valid JSON"),
    413: {"model": LimitErrorView, "description": "the request body is over its limit"},
}
QUOTA: dict[int | str, dict[str, Any]] = {
    429: {
        "model": LimitErrorView,
        "description": "the token has as many solves queued or running as it may",
    },
}


def page_error(description: str) -> dict[str, Any]:
    """An error a permalink answers as a small page, or as JSON when asked for JSON."""
    return {**error(description), "content": {"text/html": {"schema": {"type": "string"}}}}


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: error("no such job, lock or channel")}
#: Every permalink (`/l/...`): immutable answers, prefixes that redirect, and refusals.
PERMALINK: dict[int | str, dict[str, Any]] = {
    300: page_error("the lock id prefix is ambiguous; the candidates are linked"),
    304: {"description": "not modified (If-None-Match)"},
    307: {"description": "a unique lock id prefix: redirected to the full id"},
    400: page_error("the lock has several targets: choose one"),
    404: page_error("no such lock, or no such target"),
    409: page_error("the lock cannot be written in this format, or is not archived yet"),
}
#: The PyPI simple index of the archive (`/pypi/...`): HTML or PEP 691 JSON pages.
SIMPLE_PAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a PEP 503 page, or PEP 691 JSON when asked for it",
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "application/vnd.pypi.simple.v1+json": {"schema": {"type": "object"}},
            "application/vnd.pypi.simple.v1+html": {"schema": {"type": "string"}},
        },
    },
    301: {"description": "a name that is not normalised: redirected to the normalised one"},
    304: {"description": "not modified (If-None-Match)"},
    404: error("no archived file of this project"),
    502: error("a proxied index failed"),
}
PYPI_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the archived file's bytes",
        "content": {"application/octet-stream": {"schema": {"type": "string"}}},
    },
    304: {"description": "not modified (If-None-Match)"},
    404: error("no archived PyPI file with this sha256 and name"),
    502: error("a proxied index failed, or served other bytes than it listed"),
}
#: The archive channels (`/channels/...`).
CHANNEL: dict[int | str, dict[str, Any]] = {
    302: {"description": "the package is in an object store: redirected there"},
    304: {"description": "not modified (If-None-Match)"},
    404: error("no such channel, subdir or package"),
    502: error("a proxied upstream failed or redirected outside the allowlist"),
}
