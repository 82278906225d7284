"""What the lock page shows besides the lock itself: download links, install commands per
target, and the citation snippets. Built from the permalink, so they are copy-ready."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import yaml

from app.locks.formats import formats_for
from app.locks.formats.base import env_name


@dataclass(frozen=True)
class Links:
    """The stable URLs under one lock's permalink (as one request's job sees them, when
    `job` is set: its environment.yml carries that request's name)."""

    permalink: str
    job: str | None = None

    def explicit(self, target: str) -> str:
        return f"{self.permalink}/explicit/{quote(target)}.txt"

    def environment_yml(self, target: str) -> str:
        job = f"&job={quote(self.job)}" if self.job else ""
        return f"{self.permalink}/environment.yml?target={quote(target)}{job}"

    def page(self, job: str | None = None) -> str:
        return f"{self.permalink}?job={quote(job)}" if job else self.permalink

    @property
    def conda_lock(self) -> str:
        return f"{self.permalink}/conda-lock.yml"

    @property
    def pixi(self) -> str:
        return f"{self.permalink}/pixi.lock"

    @property
    def json(self) -> str:
        return f"{self.permalink}.json"


def _shell_name(name: str) -> str:
    """An environment name that needs no quoting in a shell."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "env"


def install_commands(lock: dict[str, Any], links: Links) -> dict[str, dict[str, str]]:
    """Per target: the micromamba, conda and pixi commands that install exactly this lock."""
    name = _shell_name(env_name(lock))
    commands: dict[str, dict[str, str]] = {}
    for target in sorted(lock["targets"]):
        explicit = links.explicit(target)
        filename = f"{_shell_name(target)}.txt"
        commands[target] = {
            "micromamba": (
                f"curl -fsSL -o {filename} '{explicit}'\n"
                f"micromamba create --yes --name {name} --file {filename}"
            ),
            "conda": f"conda create --yes --name {name} --file '{explicit}'",
            "pixi": (
                f"curl -fsSL -o environment.yml '{links.environment_yml(target)}'\n"
                "pixi init --import environment.yml\n"
                f"curl -fsSL -o pixi.lock '{links.pixi}'\n"
                "pixi install --frozen"
            ),
        }
    return commands


def _title(lock: dict[str, Any]) -> str:
    name = (lock.get("request") or {}).get("name")
    return f"Conda environment {name}" if name else f"Conda environment lock {lock['id'][:12]}"


def bibtex(lock: dict[str, Any], links: Links) -> str:
    created = lock.get("created_at") or ""
    year, month = created[:4], created[5:7]
    months = "jan feb mar apr may jun jul aug sep oct nov dec".split()
    fields = [
        ("title", "{" + re.sub(r"[{}\\]", "", _title(lock)) + "}"),
        ("howpublished", "{\\url{" + links.permalink + "}}"),
        ("url", "{" + links.permalink + "}"),
        ("note", "{condarchive lock " + lock["id"] + ", created " + created + "}"),
    ]
    if year.isdigit():
        fields.append(("year", year))
    if month.isdigit() and 1 <= int(month) <= 12:
        fields.append(("month", months[int(month) - 1]))
    body = ",\n".join(f"  {key} = {value}" for key, value in fields)
    return f"@misc{{condarchive_{lock['id'][:12]},\n{body}\n}}"


def citation_cff(lock: dict[str, Any], links: Links) -> str:
    """A `references:` entry for a CITATION.cff (type, title and authors are required)."""
    reference: dict[str, Any] = {
        "type": "software",
        "title": _title(lock),
        "authors": [{"name": "condarchive"}],
        "url": links.permalink,
        "identifiers": [
            {"type": "url", "value": links.permalink, "description": "condarchive permalink"}
        ],
        "notes": f"condarchive lock {lock['id']}",
    }
    if lock.get("created_at"):
        reference["date-released"] = lock["created_at"][:10]
    return yaml.safe_dump(
        {"references": [reference]}, sort_keys=False, default_flow_style=False, width=4096
    ).rstrip()


def submitted_text(request: dict[str, Any]) -> str:
    """One request's spec exactly as the user sent it: environment.yml or imported file text
    verbatim, otherwise the channels and dependencies as YAML."""
    submitted = request.get("submitted") or {}
    for key in ("environment", "content"):
        if isinstance(submitted.get(key), str):
            return submitted[key]
    try:
        return yaml.safe_dump(submitted, sort_keys=False, default_flow_style=False).rstrip()
    except yaml.YAMLError:
        return json.dumps(submitted, indent=2, sort_keys=True)


def request_entry(request: dict[str, Any], links: Links) -> dict[str, Any]:
    """What the page shows of one request that produced the lock."""
    submitted = request.get("submitted") or {}
    return {
        **request,
        "text": submitted_text(request),
        "format": submitted.get("format") if request.get("kind") == "import" else None,
        "page": links.page(request.get("job_id")),
        "provenance_text": json.dumps(request.get("provenance") or {}, indent=2, sort_keys=True),
    }


def page_context(
    lock: dict[str, Any],
    base_url: str,
    requests: list[dict[str, Any]],
    request_count: int,
    job: str | None = None,
) -> dict[str, Any]:
    """The page of a lock: every request that produced it (newest first, up to a limit),
    or, with `job`, only that job's request (then `lock["request"]` is set to it)."""
    links = Links(f"{base_url}/l/{lock['id']}", job)
    return {
        "lock": lock,
        "links": links,
        "commands": install_commands(lock, links),
        "formats": formats_for(lock),
        "bibtex": bibtex(lock, links),
        "cff": citation_cff(lock, links),
        "job": job,
        "requests": [request_entry(r, links) for r in requests],
        "request_count": request_count,
        "provenance": json.dumps(lock.get("provenance") or {}, indent=2, sort_keys=True),
        "archive": lock.get("archive"),
    }
