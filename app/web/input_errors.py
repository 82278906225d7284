"""422s that can always be rendered, and never echo more than a glimpse of the input.

Two holes in what FastAPI does by default:

* JSON may spell a lone UTF-16 surrogate (``"\\ud800"``); Python decodes it into a str
  that no UTF-8 encoder accepts, so the database, py-rattler and the JSON renderer of
  any answer that echoes it all fail (a 500). :class:`LoneSurrogates` refuses such a body
  with a 422 naming the field, before any route sees it.
* The default 422 handler echoes each error's ``input``: all 25 MB of an oversized
  import, or raw bytes that are not UTF-8 (a body sent as ``application/x-yaml``), which
  it cannot encode. :func:`request_validation_error` clips what it echoes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: A JSON escape of a UTF-16 surrogate (paired or not: a pair decodes to one code point).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
#: Characters of one echoed string, and of one echoed input as JSON.
MAX_ECHO_CHARS = 200
MAX_ECHO_JSON = 2000


def _is_json(scope: Scope) -> bool:
    """FastAPI parses a body as JSON when it says so, or says nothing."""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _lone_surrogate(value: Any, loc: list[str | int]) -> list[str | int] | None:
    """The location of the first string (or key) in `value` that is not valid Unicode."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return loc
    elif isinstance(value, dict):
        for key, item in value.items():
            if _lone_surrogate(key, []) is not None:
                return [*loc, _printable(key)]
            found = _lone_surrogate(item, [*loc, key])
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _lone_surrogate(item, [*loc, index])
            if found is not None:
                return found
    return None


class LoneSurrogates:
    """Pure ASGI middleware: 422 for a JSON body with a string that is not Unicode text.

    Only a body that spells a surrogate escape is parsed here (valid pairs, an emoji say,
    pass); every other body is handed on as it came, in one piece (FastAPI reads the whole
    body anyway). Place it inside the body size limit, which bounds what it buffers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: pass it on
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _SURROGATE_ESCAPE.search(body):
            try:
                loc = _lone_surrogate(json.loads(body), ["body"])
            except ValueError:  # not JSON: FastAPI says so
                loc = None
            if loc is not None:
                await _refuse(send, loc)
                return
        whole: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replayed() -> Message:
        return messages.pop(0) if messages else await receive()

    return replayed


async def _refuse(send: Send, loc: list[str | int]) -> None:
    detail = {
        "type": "string_unicode",
        "loc": loc,
        "msg": "this string holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape without "
        "its pair), which is not a Unicode character; send valid UTF-8 text",
    }
    response = JSONResponse(status_code=422, content={"detail": [detail]})
    await send({"type": "http.response.start", "status": 422, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def clip(value: Any) -> Any:
    """`value` as a 422 may echo it: short strings, valid text, no raw bytes, bounded."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(value)} bytes, not UTF-8 text>"
    if isinstance(value, str):
        text = _printable(value)
        if len(text) > MAX_ECHO_CHARS:
            return f"{text[:MAX_ECHO_CHARS]}… ({len(value)} characters)"
        return text
    if isinstance(value, dict):
        value = {clip(str(k)): clip(v) for k, v in value.items()}
    elif isinstance(value, list | tuple):
        value = [clip(v) for v in value]
    encoded = json.dumps(jsonable_encoder(value), default=str)
    if len(encoded) > MAX_ECHO_JSON:
        return f"{encoded[:MAX_ECHO_CHARS]}… ({len(encoded)} characters of JSON)"
    return value


async def request_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 for a body that fails its model, with each ``input`` clipped."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        error = dict(error)
        if "input" in error:
            error["input"] = clip(error["input"])
        errors.append(error)
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})
