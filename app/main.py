"""create_app(): mounts routers and error handlers, nothing else."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from app.api import archive as archive_api
from app.api import channels as channels_api
from app.api import health, locks, pages, permalinks, solves


def create_app() -> FastAPI:
    app = FastAPI(
        title="condarchive",
        version="0.1.0",
        description="Resolve, lock and archive conda environments.",
    )
    app.include_router(solves.router)
    app.include_router(locks.router)
    app.include_router(health.router)
    app.include_router(archive_api.router)
    app.include_router(channels_api.router)
    app.include_router(permalinks.router)
    app.include_router(pages.router)

    @app.exception_handler(OperationalError)
    async def database_unavailable(_request: Request, exc: OperationalError) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"detail": "the database is unavailable; try again shortly"},
            headers={"Retry-After": "5"},
        )

    return app
