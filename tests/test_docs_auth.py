"""With CONDARCHIVE_PUBLIC_READS=false the API schema and its docs pages are reads too.

Reads take the token only from the `Authorization: Bearer` header, which a browser cannot
send for a page it opens: /docs and /redoc then answer 401 saying how to read the schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.archive import cli
from tests.support.service import Service

pytestmark = pytest.mark.process  # condarchive runs as real processes

DOCS = ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect")


def _token(service: Service, scope: str) -> str:
    name = f"{scope}-{uuid.uuid4().hex[:8]}"
    result = cli(service, "token", "create", "--name", name, "--scope", scope, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_service(
        tmp_path_factory.mktemp("docs-private"),
        "http://127.0.0.1:9/",
        no_worker=True,
        auth="token",
        public_reads="false",
    )
    yield service
    assert service.server_errors() == []
    stop_service(service)


def test_docs_and_schema_need_a_reader_token(private: Service) -> None:
    with httpx.Client(base_url=private.url, timeout=30) as http:
        for path in DOCS:
            response = http.get(path)
            assert response.status_code == 401, (path, response.text[:200])
            assert response.headers["www-authenticate"] == "Bearer"
            assert "CONDARCHIVE_PUBLIC_READS=false" in response.json()["detail"], path
            bad = http.get(path, headers={"Authorization": "Bearer cat_" + "x" * 43})
            assert bad.status_code == 401, path
        for path in ("/docs", "/redoc"):
            detail = http.get(path).json()["detail"]
            assert "/openapi.json" in detail and "Authorization: Bearer" in detail, detail
        authed = {"Authorization": f"Bearer {_token(private, 'solve')}"}
        schema = http.get("/openapi.json", headers=authed)
        assert schema.status_code == 200 and schema.json()["info"]["title"] == "condarchive"
        assert "/api/v1/solves" in schema.json()["paths"]
        for path in ("/docs", "/redoc"):
            page = http.get(path, headers=authed)
            assert page.status_code == 200 and "/openapi.json" in page.text, path


def test_docs_stay_public_when_reads_are(tmp_path_factory: pytest.TempPathFactory) -> None:
    service = start_service(
        tmp_path_factory.mktemp("docs-public"), "http://127.0.0.1:9/", no_worker=True, auth="token"
    )
    try:
        with httpx.Client(base_url=service.url, timeout=30) as http:
            for path in DOCS:
                assert http.get(path).status_code == 200, path
            assert "/api/v1/solves" in http.get("/openapi.json").json()["paths"]
    finally:
        stop_service(service)
