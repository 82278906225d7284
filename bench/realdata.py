"""The real upstream channels of ``../shared/realdata``, laid out as servable conda channels.

``tests/support/realdata.py`` turns one flat ``{filename: record}`` index into a channel;
this module composes the channels the benchmark serves from it and from the files that
are already repodata-shaped:

* ``main``: index4 (linux-64 + noarch, August 2018); index5's win-64 is a conda-build
  subset without numpy or jupyter, so it is left out;
* ``r``: anaconda ``r`` linux-64 (August 2018);
* ``pytorch``: the pytorch channel's linux-64 (to October 2023).

Every channel gets a ``noarch`` subdir (empty if upstream has none), as real channels
do. Files go to a scratch directory, never into the project.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.paths import REALDATA
from tests.support.realdata import INDEX4, wrap_flat_index

R_LINUX_64 = Path("conda+conda") / "tests" / "data" / "repodata" / "r_linux-64.json"
PYTORCH_LINUX_64 = (
    Path("conda+rattler") / "test-data" / "channels" / "pytorch" / "linux-64" / "repodata.json"
)
FILES = (INDEX4, R_LINUX_64, PYTORCH_LINUX_64)


def available(root: Path = REALDATA) -> bool:
    """True when every file the real-data cases read is present."""
    return all((root / rel).is_file() for rel in FILES)


def write_main(channel_dir: Path, root: Path = REALDATA) -> Path:
    """anaconda ``main`` linux-64 + noarch as it stood in August 2018."""
    wrap_flat_index(root / INDEX4, channel_dir)
    return channel_dir


def write_single_subdir(source: Path, channel_dir: Path, subdir: str) -> Path:
    """Copy a repodata.json into ``channel_dir/subdir`` and add an empty noarch."""
    (channel_dir / subdir).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, channel_dir / subdir / "repodata.json")
    noarch = {"info": {"subdir": "noarch"}, "packages": {}, "packages.conda": {}}
    (channel_dir / "noarch").mkdir(exist_ok=True)
    (channel_dir / "noarch" / "repodata.json").write_text(json.dumps(noarch))
    return channel_dir


def write_all(channels_root: Path, root: Path = REALDATA) -> dict[str, Path]:
    """Write main, r and pytorch under ``channels_root``; return their directories by name."""
    return {
        "main": write_main(channels_root / "main", root),
        "r": write_single_subdir(root / R_LINUX_64, channels_root / "r", "linux-64"),
        "pytorch": write_single_subdir(
            root / PYTORCH_LINUX_64, channels_root / "pytorch", "linux-64"
        ),
    }
