"""The packages of the test channel: CPU and CUDA builds, several subdirs and formats.

CUDA builds are ranked first the two ways conda-forge does it: a higher build number
(`torchlike`), or `track_features` on the CPU build (`fftlike`).
"""

from __future__ import annotations

from tests.support.packages import PackageSpec

TS_2020 = 1_590_000_000_000  # 2020-05-20, in milliseconds like repodata
TS_2024 = 1_710_000_000_000  # 2024-03-09


def testchan_packages() -> list[PackageSpec]:
    specs: list[PackageSpec] = []
    for subdir in ("linux-64", "osx-arm64"):
        specs += [
            PackageSpec("libfoo", "1.0", "h0_0", 0, subdir),
            PackageSpec("libfoo", "1.1", "h0_0", 0, subdir, fmt=".tar.bz2"),
            PackageSpec("numlib", "1.20.0", "h1_0", 0, subdir, depends=["libfoo >=1.0"]),
            PackageSpec("numlib", "1.26.0", "h1_0", 0, subdir, depends=["libfoo >=1.0"]),
            PackageSpec("numlib", "1.26.4", "h1_0", 0, subdir, depends=["libfoo >=1.1"]),
            PackageSpec("numlib", "2.0.0", "h1_0", 0, subdir, depends=["libfoo >=1.1"]),
            PackageSpec("torchlike", "2.5.0", "cpu_0", 0, subdir, depends=["libfoo"]),
            PackageSpec("fftlike", "1.0", "cpu_0", 0, subdir, track_features="fftlike-cpu"),
        ]
    specs += [
        # CUDA builds exist for linux-64 only, as for most real CUDA packages.
        PackageSpec(
            "torchlike", "2.5.0", "cuda124_1", 1, "linux-64", depends=["libfoo", "__cuda >=12"]
        ),
        PackageSpec("fftlike", "1.0", "cuda_0", 0, "linux-64", depends=["__cuda >=11.8"]),
        PackageSpec("linuxonly", "1.0", "0", 0, "linux-64"),
        PackageSpec("pyutil", "1.0", "pyh_0", 0, "noarch", depends=["libfoo"]),
        PackageSpec("conflict-a", "1.0", "0", 0, "noarch", depends=["libfoo <1.0"]),
        PackageSpec("timely", "1.0", "0", 0, "noarch", timestamp_ms=TS_2020),
        PackageSpec("timely", "2.0", "0", 0, "noarch", timestamp_ms=TS_2024),
        PackageSpec("tzdata-lite", "2024a", "0", 0, "noarch", fmt=".tar.bz2"),
    ]
    return specs
