"""A page a paper can cite: `/l/{id}/CITATION.cff` and `/l/{id}/citation.bib`, and the
title, authors and description a solve request may carry (kept with that request, not
part of the lock id).

The CITATION.cff is validated against the CFF 1.2.0 JSON schema as check-jsonschema ships
it (`--builtin-schema vendor.citation-file-format`, already a test dependency):
cffconvert 2.0 pins jsonschema<4, which check-jsonschema and schemathesis cannot share.
"""

from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from app.web.templating import render_page
from tests.support.service import wait_for_solve

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
BROWSER = {"Accept": "text/html"}
AUTHORS = ["Ada Lovelace", "Hopper, Grace", {"given_names": "Alan", "family_names": "Turing"}]


@pytest.fixture(scope="module")
def http(api: httpx.Client) -> httpx.Client:
    return api


def solve(http: httpx.Client, channel_url: str, **body: object) -> dict:
    response = http.post(
        "/api/v1/solves",
        json={
            "channels": [channel_url],
            "dependencies": ["pyutil"],
            "targets": ["linux-64"],
            **body,
        },
    )
    assert response.status_code in (200, 202), response.text
    job = wait_for_solve(http, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture(scope="module")
def plain(http: httpx.Client, channel_url: str) -> dict:
    return solve(http, channel_url)


@pytest.fixture(scope="module")
def cited(http: httpx.Client, channel_url: str, plain: dict) -> dict:
    return solve(
        http,
        channel_url,
        title="Environment for the figures of Smith et al. 2026",
        authors=AUTHORS,
        description="Python and pyutil, as used for every figure.",
    )


def validate_cff(tmp_path: Path, text: str) -> None:
    path = tmp_path / "CITATION.cff"
    path.write_text(text)
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.citation-file-format", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_metadata_is_not_part_of_the_lock_id(plain: dict, cited: dict) -> None:
    assert cited["lock_id"] == plain["lock_id"]
    assert cited["request_hash"] == plain["request_hash"]
    assert cited["id"] != plain["id"]  # its own job, so its own request row


def test_citation_cff_is_valid_and_complete(
    http: httpx.Client, cited: dict, tmp_path: Path
) -> None:
    lock_id, job = cited["lock_id"], cited["id"]
    response = http.get(f"/l/{lock_id}/CITATION.cff", params={"job": job})
    assert response.status_code == 200
    assert 'filename="CITATION.cff"' in response.headers["content-disposition"]
    validate_cff(tmp_path, response.text)
    cff = yaml.safe_load(response.text)
    assert cff["cff-version"] == "1.2.0"
    assert cff["title"] == "Environment for the figures of Smith et al. 2026"
    assert cff["authors"] == [
        {"family-names": "Lovelace", "given-names": "Ada"},
        {"family-names": "Hopper", "given-names": "Grace"},
        {"family-names": "Turing", "given-names": "Alan"},
    ]
    assert cff["abstract"].startswith("Python and pyutil")
    lock = http.get(f"/api/v1/locks/{lock_id}").json()
    assert str(cff["date-released"]) == lock["created_at"][:10]
    assert cff["url"].endswith(f"/l/{lock_id}")
    # Without ?job=: the newest request that gave a title is the one cited.
    assert yaml.safe_load(http.get(f"/l/{lock_id}/CITATION.cff").text)["title"] == cff["title"]


def test_citation_without_metadata_falls_back_and_is_valid(
    http: httpx.Client, plain: dict, tmp_path: Path
) -> None:
    response = http.get(f"/l/{plain['lock_id']}/CITATION.cff", params={"job": plain["id"]})
    assert response.status_code == 200
    validate_cff(tmp_path, response.text)
    cff = yaml.safe_load(response.text)
    assert cff["title"] == f"Conda environment lock-{plain['lock_id'][:12]}"
    assert cff["authors"] and cff["date-released"]


def test_citation_bib_downloads(http: httpx.Client, cited: dict) -> None:
    lock_id = cited["lock_id"]
    short = http.get(f"/l/{lock_id[:12]}/citation.bib", params={"job": cited["id"]})
    assert short.status_code == 307  # a prefix redirects to the full id, the query kept
    assert short.headers["location"] == f"/l/{lock_id}/citation.bib?job={cited['id']}"
    response = http.get(short.headers["location"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-bibtex")
    assert "attachment" in response.headers["content-disposition"]
    bib = response.text
    assert bib.startswith(f"@misc{{condarchive_{lock_id[:12]},")
    assert "title = {Environment for the figures of Smith et al. 2026}" in bib
    assert "author = {Lovelace, Ada and Hopper, Grace and Turing, Alan}" in bib
    assert "year = " in bib and f"/l/{lock_id}" in bib


def test_page_shows_metadata_with_the_request_that_gave_it(
    http: httpx.Client, cited: dict, plain: dict
) -> None:
    lock_id = cited["lock_id"]
    page = html.unescape(http.get(f"/l/{lock_id}", headers=BROWSER).text)
    assert '<h1 id="title">Environment for the figures of Smith et al. 2026' in page
    assert page.count('class="facts request-metadata"') == 1  # only the request that gave it
    article = page[page.index('id="request-', page.index('id="requests"')) :]
    assert "Ada Lovelace" in article
    plain_page = html.unescape(
        http.get(f"/l/{lock_id}", params={"job": plain["id"]}, headers=BROWSER).text
    )
    assert f'<h1 id="title">lock-{lock_id[:12]}' in plain_page
    assert "Smith et al." not in plain_page
    assert "metadata" not in plain_page  # the spec text shows no metadata key


@pytest.mark.parametrize(
    "bad",
    [
        {"title": "x" * 301},
        {"title": "two\nlines"},
        {"title": "   "},
        {"authors": ["x"] * 101},
        {"authors": [""]},
        {"authors": [{"given_names": "No family"}]},
        {"authors": [{"family_names": "Doe", "orcid": "0000-0000"}]},
        {"authors": [{"family_names": "Doe", "email": "x@y"}]},
        {"authors": "Ada Lovelace"},
        {"description": "x" * 5001},
    ],
)
def test_bad_metadata_is_422(http: httpx.Client, channel_url: str, bad: dict) -> None:
    response = http.post(
        "/api/v1/solves",
        json={"channels": [channel_url], "dependencies": ["pyutil"], **bad},
    )
    assert response.status_code == 422, response.text


def test_failed_target_says_why_it_has_no_restore_command() -> None:
    """Rendered from an archive status as GET /api/v1/locks/{id}/archive gives it."""
    lock = {"id": "ab" * 32, "targets": {"linux-64": {}}}
    packages = [
        {"filename": "a-1-0.conda", "state": "archived", "attempts": 1, "verified": True},
        {
            "filename": "b-1-0.conda",
            "state": "failed",
            "attempts": 3,
            "verified": False,
            "reason": "sha256 mismatch",
        },
    ]
    target = {"status": "failed", "archived": 1, "total": 2, "packages": packages}
    target |= {"bytes_archived": 10, "bytes_total": 20}
    archive = {
        "status": "failed",
        "summary": {"archived": 1, "total": 2, "failed": 1, "pending": 0, "unverified": 0},
        "channels": {},
        "targets": {"linux-64": target},
    }
    page = render_page("archive_status.html", archive=archive, lock=lock)
    row = page[page.index('id="archive-target-linux-64"') :].split("</tr>")[0]
    assert "condarchive install" not in row
    assert "1 package(s) could not be archived" in row
