"""`requirements/{target}.txt`: a target's PyPI packages as pip installs them, hash-checked.

One requirement per file the target installs, each with its sha256, so that
``pip install --require-hashes --no-deps -r requirements.txt`` installs exactly the locked
files or nothing (pip refuses a file whose hash is not listed, and `--require-hashes` is
implied once any line has a hash)::

    --index-url https://pypi.org/simple
    numpy==2.1.0 \\
        --hash=sha256:<hex>
    mything @ https://example.org/mything-1.0-py3-none-any.whl \\
        --hash=sha256:<hex>

A file that came from an index is `name==version` (pip picks, among that version's
files, the one whose hash is listed), with `--index-url` first when every such file came
from one index: in a requirements file it replaces pip's default index, so the file finds
its packages wherever it is run. A file of no single known index, a direct URL, a VCS
checkout (the source archive condarchive made of the commit), and every file when `urls`
maps them to the archive is a direct `name @ url` reference: pip fetches that URL and
checks its hash, no index involved.

`--no-deps`: the lock is already complete, and some dependencies are conda packages pip
must not replace. Local lines (the researcher's own code) are comments: recorded by the
lock, not archived, to be installed by hand.
"""

from __future__ import annotations

from app.locks.formats.base import (
    Lock,
    Package,
    conda_python,
    file_url,
    local_comment,
    pypi_local,
    pypi_packages,
    select_target,
    single_index,
)

MEDIA_TYPE = "text/plain; charset=utf-8"
FORMAT = "requirements"


def _requirement(package: Package, index: str | None, urls: dict[str, str] | None) -> str:
    by_index = index is not None and package.get("kind", "index") == "index"
    if by_index and package.get("index") == index:
        head = f"{package['name']}=={package['version']}"
    else:
        head = f"{package['name']} @ {file_url(package, urls)}"
    return f"{head} \\\n    --hash=sha256:{package['sha256']}"


def render_requirements(lock: Lock, target: str | None, urls: dict[str, str] | None = None) -> str:
    """The requirements file of one target; with `urls`, every file from its archived copy."""
    name, data = select_target(lock, target)
    packages, local = pypi_packages(data), pypi_local(data)
    python = conda_python(data)
    lines = [
        f"# PyPI packages of condarchive lock {lock['id']}",
        f"# target {name} ({data['platform']})"
        + (f", Python {python} from conda" if python else ""),
        f"# The conda part is explicit/{name}.txt of the same lock: create that environment,",
        "# then install these into it with:",
        f"#     pip install --require-hashes --no-deps -r {name}.txt",
    ]
    if urls is not None:
        lines.append("# Every file is fetched from condarchive's archive.")
    if not packages:
        lines.append("# This target has no PyPI packages.")
    index = None if urls is not None else single_index(packages)
    if index is not None:
        lines.append(f"--index-url {index}")
    lines += [_requirement(p, index, urls) for p in packages]
    if local:
        lines.append("# The researcher's own code, recorded by the lock but not archived:")
        lines += [local_comment(line) for line in local]
    return "\n".join(lines) + "\n"
