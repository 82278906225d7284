"""The OpenAPI schema and its docs pages, behind the same read check as everything else.

FastAPI serves /openapi.json, /docs and /redoc outside any router, so they would stay
public with CONDARCHIVE_PUBLIC_READS=false; here they are ordinary reads. Reads take the
token only from the `Authorization: Bearer` header, which a browser does not send for a
page it opens, so a private server's docs pages say how to read the schema instead.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from app.web.auth import require_docs_reader, require_reader

OPENAPI_URL = "/openapi.json"

#: Swagger UI and ReDoc are served from here, not from a CDN, so /docs works offline.
#: The files come from the fastapi-offline package (maintained, MIT, only the assets used).
ASSETS_URL = "/docs/assets"
_ASSETS = files("fastapi_offline") / "static"
_MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}

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
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )


@router.get(f"{ASSETS_URL}/{{name}}", dependencies=[Depends(require_reader)])
async def docs_asset(name: str) -> FileResponse:
    """One of the docs pages' script, style or icon files (a fixed list, nothing else)."""
    if name not in _MEDIA_TYPES:
        raise HTTPException(status_code=404, detail=f"no docs asset {name!r}")
    path = _ASSETS / name
    headers = {"Cache-Control": "public, max-age=86400"}
    return FileResponse(str(path), media_type=_MEDIA_TYPES[name], headers=headers)


@router.get("/docs/oauth2-redirect", dependencies=[Depends(require_docs_reader)])
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", dependencies=[Depends(require_docs_reader)])
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
