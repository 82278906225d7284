"""Bounds on what one request may ask of the service, and the answers when one is hit.

Each answer names the limit, its value and the setting that changes it, so a user knows
what to trim and an operator what to raise:

* request body: 413, before the body is read (``CONDARCHIVE_MAX_BODY_BYTES``, and
  ``CONDARCHIVE_MAX_IMPORT_BYTES`` for lockfile imports, which are legitimately larger);
* environment.yml size and shape, number of dependencies, channels and targets: 422, in the
  usual ``detail[]`` form with ``type: "limit_exceeded"`` and the limit in ``ctx``;
* solves a token has queued or running: 429 with Retry-After (counted in app/jobs/quota.py);
* bytes one lock may put in the archive: 422 (app/archive/quota.py).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.core import safe_yaml
from app.core.specs import EnvironmentYaml, load_environment
from app.errors import LimitError, setting_name
from app.jobs.quota import QUOTA_FIELD, JobQuotaExceeded
from app.web.schemas import SolveBody

#: Seconds a client told 429 should wait: about what a small solve takes.
RETRY_AFTER = 10


class LimitView(BaseModel):
    setting: str
    value: int


class LimitErrorView(BaseModel):
    """The body of a 413 or 429: what was refused, and which limit refused it."""

    detail: str
    limit: LimitView


def limit_body(message: str, field: str, value: int) -> dict[str, Any]:
    return {"detail": message, "limit": {"setting": setting_name(field), "value": value}}


class LimitExceeded(Exception):
    """An answer that is not a 422: its status, its body (LimitErrorView), and Retry-After."""

    def __init__(self, status: int, body: dict[str, Any], retry_after: int | None = None) -> None:
        super().__init__(body["detail"])
        self.status = status
        self.body = body
        self.headers = {"Retry-After": str(retry_after)} if retry_after else {}


# --- request body size ---------------------------------------------------------------------


class BodyTooLarge(HTTPException):
    """Raised from `receive` while FastAPI reads the body, so it answers 413 (FastAPI
    re-raises HTTPExceptions from body parsing; any other error there becomes a 400)."""

    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__(status_code=413, detail=message["detail"])
        self.body = message


class BodySizeLimit:
    """Pure ASGI middleware: 413 naming the limit when a request body is too large.

    A declared Content-Length over the limit is refused before anything is read; a chunked
    body is counted as it streams in and refused once it passes the limit, so an oversized
    upload never reaches memory whole.
    """

    def __init__(self, app: ASGIApp, settings: Settings, import_path: str) -> None:
        self.app = app
        self.default = ("max_body_bytes", settings.max_body_bytes)
        self.per_path = {import_path: ("max_import_bytes", settings.max_import_bytes)}

    @staticmethod
    def _message(field: str, limit: int, size: int | None) -> dict[str, Any]:
        got = f"{size} bytes" if size is not None else f"over {limit} bytes"
        return limit_body(
            f"the request body is {got}; the limit is {limit} bytes ({setting_name(field)})",
            field,
            limit,
        )

    @staticmethod
    async def _refuse(send: Send, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        field, limit = self.per_path.get(scope.get("path", ""), self.default)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._refuse(send, self._message(field, limit, declared))
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(self._message(field, limit, None))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # read outside FastAPI's body parsing
            if not started:
                await self._refuse(send, exc.body)


# --- solve requests ------------------------------------------------------------------------


def parse_environment(text: str, settings: Settings) -> EnvironmentYaml:
    """environment.yml parsed, once per request, within the size and shape limits (when it
    is not YAML at all, the spec parser says what is wrong with it, with the line)."""
    loc: list[str | int] = ["body", "environment"]
    size = len(text.encode())
    if size > settings.max_environment_bytes:
        raise LimitError(
            loc,
            f"environment.yml is {size} bytes; the limit is {settings.max_environment_bytes} "
            f"bytes ({setting_name('max_environment_bytes')})",
            "max_environment_bytes",
            settings.max_environment_bytes,
        )
    parsed = load_environment(text, settings.max_yaml_depth, settings.max_yaml_alias_nodes)
    exc = parsed.error
    if isinstance(exc, safe_yaml.YamlLimitError):
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise LimitError(
            loc,
            f"environment.yml: {exc.problem}{where}",
            exc.setting.removeprefix("CONDARCHIVE_").lower(),
            exc.limit,
        ) from exc
    return parsed


def check_solve_limits(
    body: SolveBody, environment: EnvironmentYaml | None, settings: Settings
) -> None:
    """Refuse a solve request over a size limit before any of it is parsed further.

    `environment` is `body.environment` as :func:`parse_environment` returned it.
    """
    dependencies: Any = body.dependencies
    targets: Any = body.targets
    channels: Any = body.channels
    dep_loc: list[str | int] = ["body", "dependencies"]
    chan_loc: list[str | int] = ["body", "channels"]
    if environment is not None:
        data = environment.data
        if isinstance(data, dict):
            dependencies = data.get("dependencies") if dependencies is None else dependencies
            dep_loc = ["body", "environment", "dependencies"]
            if targets is None:
                targets = data.get("platforms")
            if channels is None:
                channels = data.get("channels")
                chan_loc = ["body", "environment", "channels"]
    # Counted as given, before any is resolved (build_spec also bounds the channels the
    # request resolves to, `channel::` prefixes in its match specs included).
    _check_count(chan_loc, channels, "channels", "max_channels", settings)
    if isinstance(dependencies, list):
        # A `pip:` item counts its requirement lines; PyPI requirements count as well.
        pip = [d["pip"] for d in dependencies if isinstance(d, dict) and "pip" in d]
        counted = [d for d in dependencies if not (isinstance(d, dict) and "pip" in d)]
        counted += [line for lines in pip if isinstance(lines, list) for line in lines]
        if isinstance(body.pypi_dependencies, list):
            counted += body.pypi_dependencies
        dependencies = counted
    _check_count(dep_loc, dependencies, "dependencies", "max_dependencies", settings)
    _check_count(["body", "targets"], targets, "targets", "max_targets", settings)


def _check_count(
    loc: list[str | int], items: Any, noun: str, field: str, settings: Settings
) -> None:
    """LimitError when `items` is a list longer than the setting `field` allows."""
    limit = getattr(settings, field)
    if isinstance(items, list) and len(items) > limit:
        raise LimitError(
            loc,
            f"{len(items)} {noun}; the limit is {limit} ({setting_name(field)})",
            field,
            limit,
        )


def too_many_jobs(exc: JobQuotaExceeded) -> LimitExceeded:
    """The 429 for a token at its job quota, with Retry-After."""
    return LimitExceeded(429, limit_body(exc.message, QUOTA_FIELD, exc.limit), RETRY_AFTER)
