"""Conda package names -> the PyPI names they provide, for holding a PyPI resolution to
what the conda solution already installs.

Most conda packages of Python code carry their PyPI name (compared normalised, PEP 503).
The rest come from a maintained table: grayskull's PyPI-to-conda mapping (regro, MIT),
as shipped in the ``conda-pypi`` wheel (``conda_pypi/grayskull_pypi_mapping.json``). Only
its entries whose names differ are kept, in ``conda_pypi_names.json`` next to this file;
``python -m app.solve.pypi_names WHEEL`` rewrites that file from a newer wheel.
"""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

TABLE = Path(__file__).with_name("conda_pypi_names.json")
_MAPPING_MEMBER = "conda_pypi/grayskull_pypi_mapping.json"


@lru_cache(maxsize=1)
def _table() -> dict[str, list[str]]:
    return json.loads(TABLE.read_text())["conda_to_pypi"]


def pypi_names(conda_name: str) -> list[str]:
    """The PyPI names a conda package provides (its own name, normalised, if no entry)."""
    return _table().get(conda_name.lower()) or [canonicalize_name(conda_name)]


def is_python_package(record: Mapping[str, Any]) -> bool:
    """A conda record of Python code: it depends on python (or is noarch: python). Only
    these are held on PyPI: `openssl` or `zlib` from conda says nothing about a PyPI
    project of that name."""
    if record.get("noarch") == "python":
        return True
    return any(
        str(dep).split()[0] in ("python", "python_abi") for dep in record.get("depends") or ()
    )


def held_versions(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """PyPI name -> version for every Python package of a conda solution (not python)."""
    held: dict[str, str] = {}
    for record in records:
        if record["name"] in ("python", "python_abi") or not is_python_package(record):
            continue
        for name in pypi_names(record["name"]):
            held[name] = str(record["version"])
    return held


def build_table(wheel: Path) -> dict[str, Any]:
    """The table kept here, from a conda-pypi wheel."""
    with zipfile.ZipFile(wheel) as archive:
        mapping = json.loads(archive.read(_MAPPING_MEMBER))
    conda_to_pypi: dict[str, set[str]] = {}
    for entry in mapping.values():
        conda, pypi = entry.get("conda_name"), entry.get("pypi_name")
        if not conda or not pypi or canonicalize_name(conda) == canonicalize_name(pypi):
            continue
        conda_to_pypi.setdefault(conda.lower(), set()).add(canonicalize_name(pypi))
    return {
        "source": f"grayskull PyPI-to-conda mapping (regro/grayskull, MIT), from {wheel.name}",
        "conda_to_pypi": {name: sorted(names) for name, names in sorted(conda_to_pypi.items())},
    }


if __name__ == "__main__":
    TABLE.write_text(json.dumps(build_table(Path(sys.argv[1])), indent=0, sort_keys=True) + "\n")
