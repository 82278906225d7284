"""Settings: the only place that reads the environment (prefix ``CONDARCHIVE_``) and the
configuration file.

Where a setting comes from, first found wins: a ``CONDARCHIVE_*`` environment variable, then
the TOML file named by ``CONDARCHIVE_CONFIG`` (``condarchive --config FILE`` sets it, so the
workers `serve` starts read the same file), then the default below. Keys in the file are
the setting names without the prefix (``data_dir = "/srv/condarchive"``); relative paths in
it are relative to the file.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

#: The environment variable naming the configuration file (``--config`` sets it).
CONFIG_ENV = "CONDARCHIVE_CONFIG"
#: Settings that are paths: relative ones in the file are read from the file's directory.
_PATH_KEYS = ("data_dir", "blob_dir")


class ConfigFileError(ValueError):
    """The configuration file is missing, is not TOML, or names a setting that does not exist."""


def config_file() -> Path | None:
    """The configuration file in use (``CONDARCHIVE_CONFIG``), or None."""
    name = os.environ.get(CONFIG_ENV, "").strip()
    return Path(name).expanduser().resolve() if name else None


class _ConfigFileSource(TomlConfigSettingsSource):
    """pydantic-settings' TOML source, strict: a file that is named must exist and parse,
    and a key that is no setting is refused (a typo would otherwise be ignored silently)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        if not path.is_file():
            raise ConfigFileError(f"configuration file {path} ({CONFIG_ENV}) does not exist")
        try:
            super().__init__(settings_cls, toml_file=path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigFileError(f"configuration file {path} is not valid TOML: {exc}") from exc
        unknown = sorted(set(self.toml_data) - set(settings_cls.model_fields))
        if unknown:
            raise ConfigFileError(
                f"configuration file {path}: no setting named {', '.join(unknown)} "
                "(keys are setting names without CONDARCHIVE_, e.g. data_dir)"
            )
        for key in _PATH_KEYS:
            value = self.init_kwargs.get(key)
            if isinstance(value, str) and value:
                self.init_kwargs[key] = str(path.parent / Path(value).expanduser())


#: Public channels a default install may fetch from. Names resolve through the channel
#: alias; URLs are prefixes. Loopback and file:// URLs are never in here on purpose.
DEFAULT_ALLOWED_CHANNELS = (
    "conda-forge,bioconda,pytorch,nvidia,"
    "https://repo.anaconda.com/pkgs/main,https://repo.anaconda.com/pkgs/r,"
    "https://repo.anaconda.com/pkgs/msys2"
)


class Settings(BaseSettings):
    """Everything the service can be told, with the embedded default for each."""

    model_config = SettingsConfigDict(env_prefix="CONDARCHIVE_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment variables over the configuration file over the defaults."""
        path = config_file()
        if path is None:
            return init_settings, env_settings, dotenv_settings, file_secret_settings
        toml = _ConfigFileSource(settings_cls, path)
        return init_settings, env_settings, dotenv_settings, toml, file_secret_settings

    data_dir: Path = Field(default=Path("./condarchive-data"))
    database_url: str = ""  # default: SQLite under data_dir
    broker_url: str = ""  # default: a SQLite-backed Celery broker under data_dir
    queue: str = "condarchive"  # Celery queue name; separate deployments on one Redis differ
    public_url: str = ""  # base of links in responses; default http://{host}:{port}
    host: str = "127.0.0.1"
    port: int = 8000

    allowed_channels: str = DEFAULT_ALLOWED_CHANNELS
    channel_alias: str = "https://conda.anaconda.org"

    solve_timeout: float = 300.0  # seconds, for fetching repodata and solving all targets
    dedupe_window: float = 3600.0  # seconds an identical request reuses a finished solve
    repodata_ttl: float = 600.0  # seconds a warm worker trusts its in-memory repodata
    max_attempts: int = 3  # deliveries of one job before it ends as failed

    # Faults and recovery: the database is the queue's truth; these bound how
    # long a lost job (killed worker, lost queue message) waits before it is taken back.
    job_lease: float = 60.0  # seconds a running job may go without a heartbeat
    sweep_interval: float = 15.0  # seconds between `serve`'s sweeps for lost jobs; 0: off
    sweep_grace: float = 30.0  # seconds a queued job waits before its message is re-sent
    repodata_retries: int = 3  # retries of a repodata request on 5xx, timeout, reset
    db_connect_timeout: int = 5  # seconds to reach Postgres before answering 503
    # `serve` restarts a worker that died after this many seconds (doubling, up to 60, while
    # it keeps dying young); health says "degraded" once a queue has had no live worker (a
    # heartbeat file in data_dir/workers) for worker_stale_after seconds (embedded mode).
    worker_restart_backoff: float = 1.0
    worker_stale_after: float = 30.0

    # Archive: every locked package kept in a content-addressed blob store.
    archive: Literal["auto", "off"] = "auto"  # auto: archive each new lock's packages
    blob_dir: Path | None = None  # default: data_dir/blobs
    archive_concurrency: int = 4  # downloads at once per worker
    archive_attempts: int = 4  # tries per file on 5xx, connection errors, truncation, mismatch
    archive_backoff: float = 0.5  # seconds before the 2nd try; doubles each time
    archive_timeout: float = 60.0  # seconds without bytes before a download is abandoned
    archive_lease: float = 120.0  # seconds a worker holds a package; renewed while it downloads
    # A trickling upstream (slow loris) fails the file: a try must average this many bytes/s
    # once archive_rate_grace seconds have passed (0: off), and a file (every try) must be
    # done within archive_file_deadline seconds (0: none; 2 h fits 2 GB at ~300 kB/s).
    archive_min_rate: float = 16_384.0
    archive_rate_grace: float = 30.0
    archive_file_deadline: float = 7200.0
    proxy_channels: str = ""  # pull-through mirror: "name=url,name=url"

    # PyPI: the `pip:` part of an environment, resolved with uv after the conda solve.
    # Index URLs (and the hosts their files live on) a request may name: prefixes, as for
    # channels. VCS requirements (git+https://host/…) may name these hosts (or URL prefixes).
    allowed_pypi_indexes: str = "https://pypi.org/simple,https://files.pythonhosted.org"
    allowed_vcs: str = "github.com,gitlab.com,bitbucket.org"
    default_pypi_index: str = "https://pypi.org/simple"
    # on: uv may run an sdist's build backend (untrusted code, sandboxed as README says) to
    # read its dependencies; off: an sdist without static metadata fails the target.
    pypi_builds: Literal["on", "off"] = "on"
    pypi_timeout: float = 300.0  # seconds for one target's PyPI resolution
    # Serve /pypi/simple/ as a pull-through mirror: "1" (the allowed indexes) or a list.
    proxy_pypi: str = ""
    proxy_repodata_ttl: float = 300.0  # seconds before cached upstream repodata is refreshed
    # Decoded bytes of one upstream repodata.json the proxy keeps (a gzip bomb stops here):
    # 1 GiB is a few times conda-forge's largest subdir (some 300 MB) and bounds its disk.
    proxy_max_repodata_bytes: int = 1024**3
    repodata_max_age: int = 60  # Cache-Control max-age of served repodata
    verify_interval: float = 86400.0  # seconds between beat-scheduled `verify` runs
    # Run each task in the process that sends it, without a broker (the in-process tests).
    inline_tasks: bool = False

    # Who may write, and how much. Every limit is named in the error it causes.
    auth: Literal["", "none", "token"] = ""  # "": token when distributed, none when embedded
    public_reads: bool = True  # false: reading locks, pages and channels needs a token too
    token: str = ""  # the client side: the API token the CLI sends (Authorization: Bearer)
    max_body_bytes: int = 1_048_576  # request body, any route but the import
    max_import_bytes: int = 33_554_432  # request body of POST /api/v1/locks/import
    max_dependencies: int = 500  # match specs in one solve request
    max_targets: int = 16  # targets in one solve request
    max_channels: int = 32  # channels one solve request resolves to (`channel::` specs too)
    max_jobs_per_token: int = 20  # solves one token may have queued or running at once
    max_archive_bytes_per_lock: int = 20 * 1024**3  # sum of a lock's package sizes to archive
    max_environment_bytes: int = 262_144  # environment.yml text in a solve request
    max_yaml_depth: int = 32  # nesting of any YAML document we parse
    max_yaml_alias_nodes: int = 10_000  # nodes reached through YAML aliases ("billion laughs")

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'condarchive.sqlite'}"

    @property
    def resolved_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return f"condarchive-sqlite+sqlite:///{self.resolved_data_dir / 'broker.sqlite'}"

    @property
    def embedded(self) -> bool:
        """True when no external database is configured (the one-command default)."""
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_auth(self) -> Literal["none", "token"]:
        """`auth` with its default applied: a shared (distributed) deployment needs tokens."""
        if self.auth:
            return self.auth
        return "none" if self.embedded else "token"

    @property
    def repodata_cache_dir(self) -> Path:
        return self.resolved_data_dir / "repodata-cache"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def allowed_channel_entries(self) -> list[str]:
        return [entry.strip() for entry in self.allowed_channels.split(",") if entry.strip()]

    @property
    def allowed_pypi_entries(self) -> list[str]:
        return _entries(self.allowed_pypi_indexes)

    @property
    def allowed_vcs_entries(self) -> list[str]:
        return _entries(self.allowed_vcs)

    @property
    def pypi_cache_dir(self) -> Path:
        """uv's own cache, apart from every other cache (builds write nothing else)."""
        return self.resolved_data_dir / "pypi-cache"

    @property
    def resolved_blob_dir(self) -> Path:
        return (self.blob_dir or self.resolved_data_dir / "blobs").expanduser().resolve()

    @property
    def archive_queue(self) -> str:
        """The Celery queue of archive runs and verify (solves use `queue`)."""
        return f"{self.queue}.archive"

    @property
    def proxy_dir(self) -> Path:
        return self.resolved_data_dir / "proxy-cache"

    @property
    def proxy_channel_map(self) -> dict[str, str]:
        """`CONDARCHIVE_PROXY_CHANNELS` parsed: short name -> upstream base URL."""
        channels: dict[str, str] = {}
        for entry in self.proxy_channels.split(","):
            name, sep, url = entry.strip().partition("=")
            if sep and name.strip() and url.strip():
                channels[name.strip()] = url.strip().rstrip("/")
        return channels


def _entries(value: str) -> list[str]:
    return [entry.strip().rstrip("/") for entry in value.split(",") if entry.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()


def use_config_file(path: str | Path) -> Path:
    """Read settings from `path` from now on, here and in the processes started from here
    (`serve`'s workers inherit ``CONDARCHIVE_CONFIG``); raise ConfigFileError if it is none."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise ConfigFileError(f"configuration file {resolved} (--config) does not exist")
    os.environ[CONFIG_ENV] = str(resolved)
    get_settings.cache_clear()
    return resolved
