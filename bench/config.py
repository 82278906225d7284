"""How big a run is: the full benchmark, or the smoke run CI uses so the code does not rot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    """Sizes and bounds of one run. Every load is bounded in count *and* time."""

    smoke: bool
    repeats: int  # timed solves per case (after a warm-up), for overhead and targets
    synthetic_records: int  # records in the synthetic channel (the goal asks 100,000+)
    cold_repeats: int  # cold solves per channel, each on a channel URL never seen before
    latency_requests: int  # sequential requests for p50 / p99
    load_requests: int  # most requests in a throughput run
    load_seconds: float  # longest throughput run
    load_concurrency: int  # requests in flight during a throughput run
    scale_jobs: int  # jobs per worker count
    archive_sizes: tuple[int, ...]  # payload bytes of the generated packages to archive
    archive_rounds: int  # archive runs, each of new packages, each between two plain ones
    archive_small: tuple[int, int]  # (count, bytes): a lock of many small packages, as most are
    job_timeout: float  # seconds before a job that has not finished is an error


FULL = Config(
    smoke=False,
    repeats=9,
    synthetic_records=100_000,
    cold_repeats=3,
    latency_requests=300,
    load_requests=5_000,
    load_seconds=10.0,
    load_concurrency=16,
    scale_jobs=60,
    archive_sizes=(1 << 20, 10 << 20, 50 << 20, 100 << 20),
    archive_rounds=3,
    archive_small=(100, 200_000),
    job_timeout=600.0,
)

SMOKE = Config(
    smoke=True,
    repeats=1,
    synthetic_records=2_000,
    cold_repeats=1,
    latency_requests=20,
    load_requests=60,
    load_seconds=1.0,
    load_concurrency=4,
    scale_jobs=4,
    archive_sizes=(64 << 10, 256 << 10),
    archive_rounds=1,
    archive_small=(5, 20_000),
    job_timeout=60.0,
)
