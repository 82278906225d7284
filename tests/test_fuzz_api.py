"""Property-based fuzzing of the public API from its own OpenAPI schema (schemathesis).

The schema is read from the running service, and schemathesis sends a bounded number of
generated requests to each operation (examples, coverage, fuzzing and stateful phases),
valid and invalid alike, with an admin token so the write and admin routes are reached
too. Every answer must be: not a 5xx, a documented status code, of a documented content
type, with documented headers, and a body that matches the response schema. A failure
prints schemathesis's report, with a curl line reproducing each case.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import start_service, stop_service
from tests.support.service import ROOT, Service

pytestmark = pytest.mark.process  # condarchive runs as real processes

#: Generated cases per operation and phase; 34 operations, so about 30 s per database.
MAX_EXAMPLES = 30
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",  # invalid input (by the schema) is refused with a 4xx
    "use_after_free",  # a deleted job stays deleted
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.distributed)])
def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    """The service on SQLite (embedded) and on Postgres, whose SQL refuses other inputs
    (a NUL byte in a string, say): a 500 on either is a bug. Its allowlist names only a
    port where nothing listens, so fuzzed requests reach no upstream (and no other test's)."""
    database = {}
    if request.param == "postgres":
        database["database_url"] = request.getfixturevalue("fresh_postgres_url")
    service = start_service(tmp_path / "service", "http://127.0.0.1:9", auth="token", **database)
    yield service
    stop_service(service)


def admin_token(service: Service) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "token", "create", "--name", "fuzz", "--scope", "admin"],
        env=service.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.timeout(480)  # two runs at most
def test_public_api_survives_fuzzing(fuzzed: Service, tmp_path: Path) -> None:
    token = admin_token(fuzzed)
    result = run_schemathesis(fuzzed, token, tmp_path)
    if CPYTHON_AST_RACE in result.stdout + result.stderr:
        # CPython 3.11's ast.parse can raise this when two threads parse at once, as
        # hypothesis does describing a filter in schemathesis's two worker threads (seen
        # in CI). That is the fuzzer crashing, not a finding: run it once more.
        result = run_schemathesis(fuzzed, token, tmp_path)
    report = result.stdout[-20000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert tested is not None and int(tested[1]) >= 30, report  # every operation was reached
    assert fuzzed.server_errors() == [], "\n".join(fuzzed.server_errors()[:20])


CPYTHON_AST_RACE = "SystemError: AST constructor recursion depth mismatch"


def run_schemathesis(
    fuzzed: Service, token: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{fuzzed.url}/openapi.json",
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--header",
            f"Authorization: Bearer {token}",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--workers",
            "2",
            "--no-color",
        ],
        cwd=tmp_path,  # its cache and reports stay out of the work tree
        capture_output=True,
        text=True,
        timeout=220,
    )
