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
from app.locks.tree import dependency_tree


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

    def requirements(self, target: str, archive: bool = False) -> str:
        """The target's PyPI part as a hash-pinned requirements file (pip --require-hashes);
        with `archive`, its URLs point at this service's archive instead of upstream."""
        source = "?source=archive" if archive else ""
        return f"{self.permalink}/requirements/{quote(target)}.txt{source}"

    def pylock(self, target: str) -> str:
        return f"{self.permalink}/pylock/{quote(target)}.toml"

    def sbom(self, target: str) -> str:
        return f"{self.permalink}/sbom/{quote(target)}.cdx.json"

    def dockerfile(self, target: str) -> str:
        return f"{self.permalink}/Dockerfile?target={quote(target)}"

    def bundle(self, target: str) -> str:
        return f"{self.permalink}/bundle/{quote(target)}.tar"

    @property
    def pypi_index(self) -> str:
        """This service's PyPI simple index (the archive's PyPI files)."""
        return f"{self.permalink.rsplit('/l/', 1)[0]}/pypi/simple/"

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


def pip_commands(target: str, links: Links) -> dict[str, str]:
    """The pip step after the conda environment exists: every PyPI file pinned by hash,
    from upstream, or (`pip_archive`) from this service's archive and its index."""
    return {
        "pip": f"pip install --require-hashes -r '{links.requirements(target)}'",
        "pip_archive": (
            f"pip install --require-hashes --index-url '{links.pypi_index}' "
            f"-r '{links.requirements(target, archive=True)}'"
        ),
    }


def install_commands(lock: dict[str, Any], links: Links) -> dict[str, dict[str, str]]:
    """Per target: the micromamba, conda and pixi commands that install exactly this lock,
    and for a target with a PyPI part, the pip commands that follow them."""
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
        if lock["targets"][target].get("pypi_packages"):
            commands[target].update(pip_commands(target, links))
    return commands


def short_hash(sha256: str) -> str:
    return sha256[:12]


def pypi_rows(target: dict[str, Any]) -> list[dict[str, Any]]:
    """The target's PyPI packages as the page's table shows them: the file (wheel, sdist,
    or for a VCS requirement the repository at its commit) and its short hash."""
    rows = []
    for package in target.get("pypi_packages") or []:
        vcs = package.get("vcs") or None
        filename = package.get("filename") or ""
        if vcs:
            file_kind = "VCS"
        elif filename.endswith(".whl"):
            file_kind = "wheel"
        else:
            file_kind = "sdist"
        rows.append(
            {
                **package,
                "file_kind": file_kind,
                "short_sha256": short_hash(package.get("sha256") or ""),
                "commit": (vcs or {}).get("commit") or "",
                "repository": (vcs or {}).get("url") or "",
            }
        )
    return rows


def metadata_of(request: dict[str, Any] | None) -> dict[str, Any]:
    """The citation metadata (title, authors, description) a request carried, if any."""
    metadata = ((request or {}).get("submitted") or {}).get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def citing_request(lock: dict[str, Any], requests: list[dict[str, Any]]) -> dict[str, Any]:
    """The request whose metadata the citation uses: the job's own when the page is one
    job's, else the newest that gave a title or authors, else the newest with a name."""
    if lock.get("request"):
        return lock["request"]
    for wanted in (metadata_of, lambda r: r.get("name")):
        for request in requests:
            if wanted(request):
                return request
    return requests[0] if requests else {}


def display_title(lock: dict[str, Any], request: dict[str, Any]) -> str:
    """Its title, else the environment's name, else `lock-<id12>`."""
    return metadata_of(request).get("title") or request.get("name") or f"lock-{lock['id'][:12]}"


def _title(lock: dict[str, Any], request: dict[str, Any]) -> str:
    title = metadata_of(request).get("title")
    return title or f"Conda environment {request.get('name') or 'lock-' + lock['id'][:12]}"


def cff_author(author: str | dict[str, Any]) -> dict[str, str]:
    """A CITATION.cff person: "Family, Given" or "Given Family" (the last word is the
    family name), or the object as given."""
    if isinstance(author, dict):
        person = {"family-names": author["family_names"]}
        for key in ("given_names", "orcid", "affiliation"):
            if author.get(key):
                person[key.replace("_", "-")] = author[key]
        return person
    if "," in author:
        family, given = (part.strip() for part in author.split(",", 1))
    else:
        given, _, family = author.rpartition(" ")
    person = {"family-names": family.strip() or author}
    if given.strip():
        person["given-names"] = given.strip()
    return person


def authors_of(request: dict[str, Any]) -> list[dict[str, str]]:
    """The request's authors as CITATION.cff persons, or condarchive as the one entity
    (CITATION.cff requires at least one author)."""
    given = metadata_of(request).get("authors") or []
    return [cff_author(a) for a in given] or [{"name": "condarchive"}]


def _bib_escape(value: str) -> str:
    return re.sub(r"[{}\\]", "", value)


def bibtex(lock: dict[str, Any], links: Links, request: dict[str, Any] | None = None) -> str:
    request = request or {}
    created = lock.get("created_at") or ""
    year, month = created[:4], created[5:7]
    months = "jan feb mar apr may jun jul aug sep oct nov dec".split()
    names = [
        f"{a['family-names']}, {a['given-names']}"
        if "given-names" in a
        else a.get("family-names") or "{" + a["name"] + "}"
        for a in authors_of(request)
    ]
    fields = [
        ("title", "{" + _bib_escape(_title(lock, request)) + "}"),
        ("author", "{" + _bib_escape(" and ".join(names)).replace("\n", " ") + "}"),
        ("howpublished", "{\\url{" + links.permalink + "}}"),
        ("url", "{" + links.permalink + "}"),
        ("note", "{condarchive lock " + lock["id"] + ", created " + created + "}"),
    ]
    if year.isdigit():
        fields.append(("year", year))
    if month.isdigit() and 1 <= int(month) <= 12:
        fields.append(("month", months[int(month) - 1]))
    if description := metadata_of(request).get("description"):
        fields.append(("abstract", "{" + _bib_escape(description) + "}"))
    body = ",\n".join(f"  {key} = {value}" for key, value in fields)
    return f"@misc{{condarchive_{lock['id'][:12]},\n{body}\n}}"


def citation_cff(lock: dict[str, Any], links: Links, request: dict[str, Any] | None = None) -> str:
    """A complete CITATION.cff (version 1.2.0) for this environment."""
    request = request or {}
    document: dict[str, Any] = {
        "cff-version": "1.2.0",
        "message": "If you use this software environment, please cite it as below.",
        "type": "software",
        "title": _title(lock, request),
        "authors": authors_of(request),
        "url": links.permalink,
        "identifiers": [
            {"type": "url", "value": links.permalink, "description": "condarchive permalink"}
        ],
        "version": lock["id"],
    }
    if description := metadata_of(request).get("description"):
        document["abstract"] = description
    if lock.get("created_at"):
        document["date-released"] = lock["created_at"][:10]
    return yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True
    ).rstrip()


def submitted_text(request: dict[str, Any]) -> str:
    """One request's spec exactly as the user sent it: environment.yml or imported file text
    verbatim, otherwise the channels and dependencies as YAML."""
    submitted = dict(request.get("submitted") or {})
    submitted.pop("metadata", None)  # shown beside the spec, not in it
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
        "metadata": metadata_of(request),
        "provenance_text": json.dumps(request.get("provenance") or {}, indent=2, sort_keys=True),
    }


def _plain(value: Any) -> str:
    """One provenance value as text: lists joined, objects as `key value` pairs."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        if set(value) == {"name", "version"}:
            return f"{value['name']} {value['version']}"
        return "; ".join(f"{k} {_plain(v)}" for k, v in value.items())
    return str(value)


def provenance_table(provenance: dict[str, Any]) -> dict[str, Any]:
    """How the lock was made, as table rows: one per fact, and the repodata each channel
    and subdir was read at as a table of its own (columns are every key any row has)."""
    facts = [
        (key.replace("_", " "), _plain(value))
        for key, value in provenance.items()
        if key != "repodata"
    ]
    sources = [r for r in provenance.get("repodata") or [] if isinstance(r, dict)]
    columns: list[str] = []
    for source in sources:
        columns += [k for k in source if k not in columns]
    rows = [[_plain(source.get(c)) if c in source else "" for c in columns] for source in sources]
    return {"facts": facts, "columns": columns, "rows": rows}


#: Packages named in one "why" cell at most; the rest are counted.
WHY_NAMES = 4


def why_text(
    lock: dict[str, Any], target: str, requests: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """package id (``conda:numpy``, ``pypi:requests``) -> why it is in the target: the
    requested specs it answers, else the packages that require it (``condarchive tree
    --invert`` gives the whole chain), as ``{"label", "items", "more"}``."""
    tree = dependency_tree(lock, target, requests)
    text: dict[str, dict[str, Any]] = {}
    for key, package in tree.packages.items():
        asked = [r.spec for r in tree.roots if r.package == key and r.requested]
        if asked:
            text[key] = {"label": "requested:", "items": asked, "more": 0}
            continue
        names = [tree.packages[k].name for k in package.required_by]
        if names:
            more = max(len(names) - WHY_NAMES, 0)
            text[key] = {"label": "required by", "items": names[:WHY_NAMES], "more": more}
    return text


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
    citing = citing_request(lock, requests)
    return {
        "lock": lock,
        "links": links,
        "title": display_title(lock, citing),
        "citing": {**metadata_of(citing), "job_id": citing.get("job_id")},
        "commands": install_commands(lock, links),
        "pypi": {name: pypi_rows(target) for name, target in lock["targets"].items()},
        "why": {name: why_text(lock, name, requests) for name in lock["targets"]},
        "formats": formats_for(lock),
        "bibtex": bibtex(lock, links, citing),
        "cff": citation_cff(lock, links, citing),
        "job": job,
        "requests": [request_entry(r, links) for r in requests],
        "request_count": request_count,
        "provenance": provenance_table(lock.get("provenance") or {}),
        "archive": lock.get("archive"),
    }
