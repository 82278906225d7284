"""create_app(): mounts routers, middleware and error handlers, nothing else."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.config import get_settings
from app.web import responses as documented
from app.web.auth import require_reader
from app.web.input_errors import LoneSurrogates, request_validation_error
from app.web.limits import BodySizeLimit, BodyTooLarge, LimitExceeded
from app.web.routes import admin, docs, health, locks, pages, permalinks, pypi_simple, solves
from app.web.routes import archive as archive_api
from app.web.routes import artifacts as artifacts_api
from app.web.routes import bundle as bundle_api
from app.web.routes import channels as channels_api

IMPORT_PATH = "/api/v1/locks/import"  # its body limit is CONDARCHIVE_MAX_IMPORT_BYTES


def create_app() -> FastAPI:
    app = FastAPI(
        title="condarchive",
        version="0.1.0",
        description="Resolve, lock and archive conda environments.",
        # Served by app/web/routes/docs.py, behind the read check like every other read.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    # Reads are public unless CONDARCHIVE_PUBLIC_READS=false; writes check their own scope.
    readers = [Depends(require_reader)]
    app.include_router(solves.router, dependencies=readers)
    app.include_router(locks.router, dependencies=readers)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(admin.router)
    app.include_router(archive_api.router, dependencies=readers)
    app.include_router(channels_api.router, dependencies=readers, responses=documented.CHANNEL)
    app.include_router(pypi_simple.router, dependencies=readers)
    app.include_router(artifacts_api.router, dependencies=readers, responses=documented.PERMALINK)
    app.include_router(bundle_api.router, dependencies=readers, responses=documented.PERMALINK)
    app.include_router(permalinks.router, dependencies=readers, responses=documented.PERMALINK)
    app.include_router(pages.router, dependencies=readers)
    # Inside the size limit (added later is outermost), which bounds what it buffers.
    app.add_middleware(LoneSurrogates)
    app.add_middleware(BodySizeLimit, settings=get_settings(), import_path=IMPORT_PATH)
    app.add_exception_handler(RequestValidationError, request_validation_error)

    async def database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"detail": "the database is unavailable; try again shortly"},
            headers={"Retry-After": "5"},
        )

    # Lost connection, refused connection, or no pooled connection free in time.
    for unavailable in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(unavailable, database_unavailable)

    @app.exception_handler(LimitExceeded)
    async def limit_exceeded(_request: Request, exc: LimitExceeded) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=exc.body, headers=exc.headers)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(status_code=413, content=exc.body, headers={"Connection": "close"})

    return app
