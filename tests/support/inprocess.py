"""condarchive in the test process: the app under Starlette's TestClient, SQLite in a
temp dir, and every task run inline by the function that sends it.

The settings are read from the environment (app/config.py) and cached, and so are the
engine, the worker's warm Solver and the pull-through proxy: one service is *active* at a
time. Each :class:`InProcessService` holds its own ``CONDARCHIVE_*`` variables and makes
itself active before each request its client sends, so a test may use several.

Server errors are not hidden in a log here: the client re-raises any exception the app
did not handle (``raise_server_exceptions``), so an unexpected 500 fails the test, and
the service records every 5xx it answered (:meth:`InProcessService.server_errors`).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.support.service import free_port

_active: InProcessService | None = None
_outside: dict[str, str] | None = None  # the CONDARCHIVE_* variables before any activation


def inprocess_env(data_dir: Path, allowed_channels: str, **extra: str) -> dict[str, str]:
    """The ``CONDARCHIVE_*`` variables of an in-process service (archive off unless asked)."""
    env = {
        "CONDARCHIVE_DATA_DIR": str(data_dir),
        "CONDARCHIVE_ALLOWED_CHANNELS": allowed_channels,
        "CONDARCHIVE_QUEUE": f"test-{uuid.uuid4().hex[:12]}",
        "CONDARCHIVE_AUTH": "none",
        "CONDARCHIVE_ARCHIVE": "off",
        "CONDARCHIVE_INLINE_TASKS": "true",
    }
    env.update({f"CONDARCHIVE_{k.upper()}": v for k, v in extra.items()})
    return env


def _reset_process_state() -> None:
    """Forget everything built from the previous settings: the settings themselves, the
    engine, and the per-process singletons (the worker's warm Solver, whose repodata
    cache is in the data directory, and the pull-through proxy)."""
    from app.config import get_settings
    from app.db.session import reset_engine

    get_settings.cache_clear()
    reset_engine()
    for module_name, getter in _SINGLETONS:
        module = sys.modules.get(module_name)  # not imported yet: nothing to forget
        if module is not None:
            getattr(module, getter).cache_clear()


#: (module, cached getter) of the lazily built per-process objects.
_SINGLETONS = (
    ("app.jobs.run", "get_solver"),
    ("app.archive.proxy", "get_proxy"),
)


def _swap_environment(env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith("CONDARCHIVE_")]:
        del os.environ[key]
    os.environ.update(env)
    _reset_process_state()


class InProcessService:
    """The API and its tasks in this process; quacks like tests.support.service.Service
    where a test only needs `url`, `env` and an HTTP client."""

    def __init__(self, workdir: Path, allowed_channels: str, **settings: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_port()  # nothing listens: it only makes the links absolute
        self.env = inprocess_env(workdir / "data", allowed_channels, **settings)
        self.env["CONDARCHIVE_PORT"] = str(self.port)
        self._server_errors: list[str] = []
        self.activate()
        from app.db.migrate import upgrade
        from app.main import create_app

        upgrade()
        self.app: FastAPI = create_app()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return Path(self.env["CONDARCHIVE_DATA_DIR"])

    def activate(self) -> None:
        """Make this service's settings the process's (a no-op when they already are)."""
        global _active, _outside
        if _active is self:
            return
        if _outside is None:
            _outside = {k: v for k, v in os.environ.items() if k.startswith("CONDARCHIVE_")}
        _swap_environment(self.env)
        _active = self

    def server_errors(self) -> list[str]:
        """Every 5xx the app answered, as `METHOD path -> status` (Service.server_errors()
        reads the same from the access log; an unhandled exception raises in the test)."""
        return list(self._server_errors)

    def client(self, **kwargs: Any) -> InProcessClient:
        """An HTTP client of this service; use it as a context manager (`with`), which
        runs one event loop thread for all its requests."""
        return InProcessClient(self, **kwargs)

    def close(self) -> None:
        global _active, _outside
        if _active is self:
            _swap_environment(_outside or {})
            _active, _outside = None, None


class InProcessClient(TestClient):
    """A TestClient that activates its service before each request it sends; it follows
    no redirects, as the httpx.Client of the process tests does not."""

    def __init__(self, service: InProcessService, **kwargs: Any) -> None:
        kwargs.setdefault("base_url", service.url)
        kwargs.setdefault("raise_server_exceptions", True)
        kwargs.setdefault("follow_redirects", False)  # as httpx.Client, unlike TestClient
        super().__init__(service.app, **kwargs)
        self.service = service

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        self.service.activate()
        response = super().send(request, **kwargs)
        if response.status_code >= 500:
            self.service._server_errors.append(
                f"{request.method} {request.url.raw_path.decode()} -> {response.status_code}"
            )
        return response


@contextmanager
def inprocess_service(
    workdir: Path, allowed_channels: str, **settings: str
) -> Iterator[InProcessService]:
    service = InProcessService(workdir, allowed_channels, **settings)
    try:
        yield service
    finally:
        service.close()
