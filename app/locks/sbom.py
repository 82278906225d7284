"""A target of a lock as a CycloneDX 1.6 SBOM (JSON): what a reviewer's tools read.

One component per locked file, conda and PyPI, each with its package URL::

    pkg:conda/<name>@<version>?build=<b>&channel=<channel URL>&subdir=<s>&type=<conda|tar.bz2>
    pkg:pypi/<name>@<version>      (with vcs_url= or download_url= when not from an index)

its SHA-256 and MD5 (PyPI files: SHA-256), the licence its record declares (as a name:
conda's ``license`` field is free text, not always an SPDX id), the file's URL, and the
dependency graph of app/locks/tree.py (conda depends by name, PyPI requires by name).

The bytes are a function of the lock, the target and the deployment's base URL (the
permalink in ``metadata``) only, so the document is byte-stable across requests and
restarts: ``serialNumber`` is a uuid5 of the lock id and target, ``timestamp`` is when
the lock was made, components and dependencies are sorted, and no tool version is
written.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

from app.locks.tree import build_graph, top_level

SPEC_VERSION = "1.6"
SCHEMA = "http://cyclonedx.org/schema/bom-1.6.schema.json"
#: Names the uuid5 of each SBOM's serial number (a fixed, arbitrary namespace).
SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:condarchive:sbom")
MEDIA_TYPE = "application/vnd.cyclonedx+json; version=1.6"


class UnknownTarget(LookupError):
    def __init__(self, target: str, available: list[str]) -> None:
        super().__init__(f"this lock has no target {target!r}; it has: {', '.join(available)}")
        self.available = available


def _quote(value: str) -> str:
    """Percent-encoding as the purl spec (and packageurl-python) writes it: ``:`` and
    ``/`` stay as they are."""
    return quote(value, safe="/:")


def purl(type_: str, name: str, version: str, qualifiers: dict[str, str] | None = None) -> str:
    text = f"pkg:{type_}/{_quote(name)}@{_quote(version)}"
    pairs = sorted((k, v) for k, v in (qualifiers or {}).items() if v)
    if pairs:
        text += "?" + "&".join(f"{k}={_quote(v)}" for k, v in pairs)
    return text


def conda_purl(package: dict[str, Any]) -> str:
    kind = "tar.bz2" if package["filename"].endswith(".tar.bz2") else "conda"
    qualifiers = {
        "build": package["build"],
        "channel": package["channel"],
        "subdir": package["subdir"],
        "type": kind,
    }
    return purl("conda", package["name"], str(package["version"]), qualifiers)


def pypi_purl(package: dict[str, Any]) -> str:
    qualifiers: dict[str, str] = {}
    vcs = package.get("vcs") or {}
    if package.get("kind") == "vcs" and vcs.get("url"):
        qualifiers["vcs_url"] = f"{vcs.get('type') or 'git'}+{vcs['url']}@{vcs.get('commit')}"
    elif package.get("kind") == "url":
        qualifiers["download_url"] = package["url"]
    return purl("pypi", package["name"], str(package["version"]), qualifiers)


def _hashes(package: dict[str, Any]) -> list[dict[str, str]]:
    hashes = []
    if package.get("sha256"):
        hashes.append({"alg": "SHA-256", "content": package["sha256"]})
    if package.get("md5"):
        hashes.append({"alg": "MD5", "content": package["md5"]})
    return hashes


def _conda_component(package: dict[str, Any]) -> dict[str, Any]:
    ref = conda_purl(package)
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": ref,
        "name": package["name"],
        "version": str(package["version"]),
        "hashes": _hashes(package),
    }
    if package.get("license"):
        component["licenses"] = [
            {"license": {"name": str(package["license"]), "acknowledgement": "declared"}}
        ]
    component["purl"] = ref
    component["externalReferences"] = [{"type": "distribution", "url": package["url"]}]
    component["properties"] = [
        {"name": "condarchive:source", "value": "conda"},
        {"name": "condarchive:filename", "value": package["filename"]},
    ]
    return component


def _pypi_component(package: dict[str, Any]) -> dict[str, Any]:
    ref = pypi_purl(package)
    references = [{"type": "distribution", "url": package["url"]}]
    vcs = package.get("vcs") or {}
    if vcs.get("url"):
        references.append({"type": "vcs", "url": vcs["url"]})
    return {
        "type": "library",
        "bom-ref": ref,
        "name": package["name"],
        "version": str(package["version"]),
        "hashes": _hashes(package),
        "purl": ref,
        "externalReferences": references,
        "properties": [
            {"name": "condarchive:source", "value": "pypi"},
            {"name": "condarchive:filename", "value": package["filename"]},
        ],
    }


def serial_number(lock_id: str, target: str) -> str:
    """The same for every rendering of this lock's target, on every deployment."""
    return uuid.uuid5(SERIAL_NAMESPACE, f"{lock_id}/{target}").urn


def render_sbom(lock: dict[str, Any], target: str, permalink: str) -> bytes:
    """The CycloneDX JSON of one target of `lock` (a lock view with extras), as bytes.

    `permalink` is the lock's page (``<base>/l/<id>``), the document's subject."""
    if target not in lock["targets"]:
        raise UnknownTarget(target, sorted(lock["targets"]))
    data = lock["targets"][target]
    refs: dict[str, str] = {}
    components = []
    for package in data.get("packages") or []:
        component = _conda_component(package)
        refs[f"conda:{package['name']}"] = component["bom-ref"]
        components.append(component)
    for package in data.get("pypi_packages") or []:
        component = _pypi_component(package)
        refs[f"pypi:{package['name']}"] = component["bom-ref"]
        components.append(component)
    components.sort(key=lambda c: c["bom-ref"])

    graph = build_graph(data)
    subject = f"{permalink}#{target}"
    dependencies = [
        {"ref": subject, "dependsOn": sorted(refs[key] for key in top_level(graph))},
        *(
            {"ref": refs[key], "dependsOn": sorted(refs[k] for k in graph[key].requires)}
            for key in graph
        ),
    ]
    dependencies.sort(key=lambda d: d["ref"])

    properties = [
        {"name": "condarchive:lock", "value": lock["id"]},
        {"name": "condarchive:target", "value": target},
        {"name": "condarchive:platform", "value": data["platform"]},
    ]
    properties += [
        {"name": "condarchive:virtual_package", "value": v} for v in data["virtual_packages"]
    ]
    # the researcher's own code: recorded by the lock, not a file it can name or hash
    properties += [{"name": "condarchive:pypi_local", "value": v} for v in data["pypi_local"]]
    document = {
        "$schema": SCHEMA,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial_number(lock["id"], target),
        "version": 1,
        "metadata": {
            "timestamp": lock["created_at"],
            "tools": {"components": [{"type": "application", "name": "condarchive"}]},
            "component": {
                "type": "application",
                "bom-ref": subject,
                "name": f"lock-{lock['id'][:12]}-{target}",
                "version": lock["id"],
                "description": f"condarchive lock {lock['id']}, target {target}",
                "externalReferences": [{"type": "website", "url": permalink}],
            },
            "properties": properties,
        },
        "components": components,
        "dependencies": dependencies,
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
