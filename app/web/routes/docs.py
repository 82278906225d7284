"""The OpenAPI schema and its docs pages, behind the same read check as everything else.

FastAPI serves /openapi.json, /docs and /redoc outside any router, so they would stay
public with CONDARCHIVE_PUBLIC_READS=false; here they are ordinary reads. Reads take the
token only from the `Authorization: Bearer` header, which a browser does not send for a
page it opens, so a private server's docs pages say how to read the schema instead.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse

from app.web.auth import require_docs_reader, require_reader

OPENAPI_URL = "/openapi.json"

router = APIRouter(include_in_schema=False)


@router.get(OPENAPI_URL, dependencies=[Depends(require_reader)])
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", dependencies=[Depends(require_docs_reader)])
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url="/docs/oauth2-redirect",
    )


@router.get("/docs/oauth2-redirect", dependencies=[Depends(require_docs_reader)])
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", dependencies=[Depends(require_docs_reader)])
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - ReDoc")
