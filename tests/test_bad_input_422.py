"""Input that used to answer 500 gets a 422 naming the field, from the running service.

* a match spec whose build number overflows (rattler panics: a BaseException);
* a body that is not UTF-8, sent as `application/x-yaml`;
* a lone UTF-16 surrogate (`\\ud800`) in any JSON string, whose echo could not be rendered;
* a conda-lock import whose `metadata`, `custom_metadata`, `hash` or `channels` has the
  wrong type;
* an oversized import: its 422 does not echo the 25 MB back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.service import Service

pytestmark = pytest.mark.process  # condarchive runs as real processes

CHANNEL = "http://127.0.0.1:9/chan"  # allowed; nothing listens, and nothing is fetched
SOLVES, IMPORT = "/api/v1/solves", "/api/v1/locks/import"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_service(tmp_path_factory.mktemp("bad-input"), CHANNEL, no_worker=True)
    yield service
    stop_service(service)


@pytest.fixture(scope="module")
def http(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=120) as client:
        yield client


def _details(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, (response.status_code, response.text[:500])
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    return detail


def _raw_json(http: httpx.Client, path: str, text: str) -> httpx.Response:
    """POST `text` as JSON exactly as written (json.dumps keeps \\ud800 as an escape)."""
    return http.post(path, content=text.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "spec",
    [
        "foo[build_number=99999999999999999999999]",
        'foo[build_number=">18446744073709551616"]',
    ],
)
def test_overflowing_build_number_is_a_422(http: httpx.Client, spec: str) -> None:
    detail = _details(http.post(SOLVES, json={"channels": [CHANNEL], "dependencies": [spec]}))
    assert detail[0]["loc"][-2:] == ["dependencies", 0], detail
    assert spec in detail[0]["msg"], detail


@pytest.mark.parametrize("path", [SOLVES, IMPORT])
def test_non_utf8_yaml_body_is_a_422(http: httpx.Client, path: str) -> None:
    body = b"channels: [\xff\xfe\xfa]\ndependencies: [\xc3\x28]\n"
    detail = _details(http.post(path, content=body, headers={"content-type": "application/x-yaml"}))
    assert detail[0]["loc"] == ["body"], detail
    json.dumps(detail)  # renders; the raw bytes are not echoed as if they were text


@pytest.mark.parametrize(
    ("path", "text", "loc"),
    [
        (SOLVES, f'{{"channels": ["{CHANNEL}"], "dependencies": ["foo\\ud800"]}}', [0]),
        (SOLVES, '{"environment": "dependencies: [foo]\\n# \\udfff"}', []),
        (SOLVES, f'{{"channels": ["{CHANNEL}\\ud800"], "dependencies": ["foo"]}}', [0]),
        (SOLVES, f'{{"channels": ["{CHANNEL}"], "dependencies": ["foo"], "x\\ud800": 1}}', []),
        (IMPORT, '{"content": "@EXPLICIT\\n\\ud800"}', []),
        (IMPORT, '{"content": "x", "format": "\\ud800"}', []),
    ],
)
def test_lone_surrogate_is_a_422_naming_the_field(
    http: httpx.Client, path: str, text: str, loc: list[Any]
) -> None:
    detail = _details(_raw_json(http, path, text))
    where = detail[0]["loc"]
    assert where[0] == "body" and len(where) >= 2, detail
    field = json.loads(text.replace("\\ud800", "").replace("\\udfff", ""))
    assert where[1] in field or "\\ud800" in str(where[1]), detail
    if loc:
        assert where[2:] == loc, detail
    assert "surrogate" in detail[0]["msg"], detail
    assert "\ud800" not in json.dumps(detail, ensure_ascii=False)


def test_a_valid_surrogate_pair_is_not_refused_as_lone(http: httpx.Client) -> None:
    text = f'{{"channels": ["{CHANNEL}"], "dependencies": ["foo\\ud83d\\ude00"]}}'
    detail = _details(_raw_json(http, SOLVES, text))  # refused as a spec, by the spec parser
    assert "surrogate" not in detail[0]["msg"] and "\U0001f600" in detail[0]["msg"], detail


CONDA_LOCK = {
    "version": 1,
    "metadata": {
        "channels": [{"url": CHANNEL, "used_env_vars": []}],
        "platforms": ["linux-64"],
        "custom_metadata": {},
    },
    "package": [
        {
            "name": "foo",
            "version": "1.0",
            "manager": "conda",
            "platform": "linux-64",
            "dependencies": {},
            "url": f"{CHANNEL}/linux-64/foo-1.0-0.conda",
            "hash": {"md5": "0" * 32, "sha256": "0" * 64},
            "category": "main",
            "optional": False,
        }
    ],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    lock = json.loads(json.dumps(CONDA_LOCK))
    *parents, last = path.split(".")
    node: Any = lock
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return lock


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("metadata", 5, "metadata"),
        ("metadata", [1], "metadata"),
        ("metadata.custom_metadata", 5, "custom_metadata"),
        ("metadata.custom_metadata", {"condarchive.target.linux-64": 5}, "custom_metadata"),
        (
            "metadata.custom_metadata",
            {"condarchive.virtual_packages.linux-64": 5},
            "custom_metadata",
        ),
        ("metadata.channels", 5, "channels"),
        ("metadata.channels", [5], "channels"),
        ("metadata.channels", [{"url": 5}], "channels"),
        ("package.0.hash", 5, "hash"),
        ("package.0.hash", {"md5": 5}, "hash"),
        ("package.0.hash", {"md5": "0" * 32, "sha256": [1]}, "hash"),
    ],
)
def test_conda_lock_fields_of_the_wrong_type_are_a_422(
    http: httpx.Client, path: str, value: Any, field: str
) -> None:
    import yaml

    content = yaml.safe_dump(_with(path, value), sort_keys=False)
    detail = _details(http.post(IMPORT, json={"content": content, "format": "conda-lock"}))
    assert field in detail[0]["msg"], detail


def test_an_oversized_import_is_not_echoed_back(http: httpx.Client) -> None:
    content = "# platform: linux-64\n@EXPLICIT\n" + "x" * 25_000_000
    response = http.post(IMPORT, json={"content": content})
    detail = _details(response)
    assert detail[0]["loc"] == ["body", "content"], detail
    assert len(response.content) < 10_000, len(response.content)


def test_no_server_errors(service: Service, http: httpx.Client) -> None:
    assert http.get("/api/v1/health").status_code == 200
    assert service.server_errors() == []
