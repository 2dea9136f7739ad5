"""Settings: `--config PATH`, else `$DIGEST_CONFIG`, else `./config.toml`, else built-in defaults.

Every key is typed and checked at start; unknown keys and wrong types are refused with the key and
the reason. Secrets are never written in the file: the file names the environment variable (or a file
outside the repository) that holds them.
"""

from __future__ import annotations

import ipaddress
import logging
import operator
import os
import re
import tomllib
from functools import reduce
from importlib import resources
from pathlib import Path
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from digest.records import CONTROL, check_address, check_zone

DATA_DIR = resources.files("digest") / "data"
_log = logging.getLogger("digest.config")


def bundled_listings() -> list[str]:
    """Paths of the sample listings that ship inside the package."""
    names = ["hf_daily_papers_2024-10-25.json", "hf_papers_page_a.txt", "hf_papers_page_b.txt"]
    return [str(DATA_DIR / n) for n in names]


def earlier_secret(path: Path | None) -> str | None:
    """The secret an earlier version kept in a file (`Settings.earlier_secret_file`), if it holds one a
    database can adopt (digest.store.secrets)."""
    if path is None or not path.is_file():
        return None
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value if value and len(value) <= 200 else None


class ConfigError(Exception):
    """A configuration problem a user can fix; the message names the key and the reason."""


class _Strict(BaseModel):
    # no inf or nan: every number is checked against a range that can work (each Field's bounds)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


DAY = 86400.0
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LIST_ID = re.compile(rf"[^<>]*<{_ATOM}(\.{_ATOM})+>")  # RFC 2919: an optional phrase, <label.namespace>
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
DEFAULT_DATABASE = "digest.db"  # in the working directory, when database.url is not set
# The default's name in some earlier versions: an upgrade finds it rather than starting an empty one.
EARLIER_DEFAULTS = ("digest.store.db",)
_DRIVER = re.compile(r"([\w+]+)://")


class DatabaseSettings(_Strict):
    url: str = f"sqlite:///{DEFAULT_DATABASE}"

    @field_validator("url")
    @classmethod
    def _supported(cls, v: str) -> str:
        # the driver as SQLAlchemy's make_url reads it (`name://...`), without loading SQLAlchemy at start
        found = _DRIVER.match(v)
        if found is None:
            raise ValueError("not a database URL (sqlite:///PATH or postgresql://USER@HOST/DB)")
        scheme = found.group(1)
        if scheme not in ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg"):
            raise ValueError(f"unsupported database {scheme!r}: use sqlite:///PATH or "
                             "postgresql://USER@HOST/DB")
        return v


class HttpSettings(_Strict):
    timeout: float = Field(20.0, gt=0, le=600)
    retries: int = Field(4, ge=0, le=10)
    backoff: float = Field(1.0, ge=0, le=3600)  # first retry waits about this many seconds, doubling
    max_backoff: float = Field(60.0, ge=0, le=DAY)
    user_agent: str = "trending-digest/0.1 (+self-hosted paper digest)"
    max_bytes: int = Field(50_000_000, ge=1024, le=2_000_000_000)  # refuse a response body larger than this

    @field_validator("user_agent")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if CONTROL.search(v) or not v.strip():
            raise ValueError("must be one line of text (it is sent as an HTTP header)")
        return v


class _Source(_Strict):
    """What every source's settings say of it: whether it reads the web (an HTTP client is opened for
    it) and what it reads, as `digest sources` shows it."""

    needs_http: ClassVar[bool] = True

    def target(self) -> str:
        return getattr(self, "base_url", "")


class HfDailySource(_Source):
    type: Literal["hf_daily"]
    base_url: str = "https://huggingface.co"
    backfill_days: int = Field(3, ge=0, le=365)
    refresh_days: int = Field(2, ge=0, le=30)  # re-fetch the last days to refresh upvotes
    page_size: int = Field(50, ge=1, le=100)
    sort: Literal["publishedAt", "trending"] | None = None
    schedule: str = "15 * * * *"  # cron, used by the scheduler


class ArxivSource(_Source):
    type: Literal["arxiv"]
    base_url: str = "https://export.arxiv.org"
    categories: list[str] = ["cs.LG", "cs.CL"]
    page_size: int = Field(100, ge=1, le=2000)
    max_results: int = Field(1000, ge=1, le=100_000)
    delay: float = Field(3.0, ge=0, le=3600)  # seconds between calls, as arXiv's terms ask
    backfill_days: int = Field(3, ge=0, le=365)
    overlap_days: int = Field(1, ge=0, le=30)  # re-read this far behind the watermark (late announcements)
    query: str | None = None  # raw arXiv search_query; overrides `categories` ("cat:cs.LG AND abs:diffusion")
    schedule: str = "30 */6 * * *"


class FileSource(_Source):
    type: Literal["file"]
    paths: list[str] = Field(min_length=1)
    schedule: str = "0 * * * *"

    needs_http: ClassVar[bool] = False

    def target(self) -> str:
        return ", ".join(self.paths)


# The kinds of source, by their settings; each reads its listings in digest.sources.<its type>. A new
# source: its settings class here, a module of that name in digest/sources/ with its `fetch`.
SOURCE_TYPES: tuple[type[_Source], ...] = (HfDailySource, ArxivSource, FileSource)
SOURCE_NAMES = frozenset(get_args(t.model_fields["type"].annotation)[0] for t in SOURCE_TYPES)
SourceSettings = Annotated[reduce(operator.or_, SOURCE_TYPES), Field(discriminator="type")]


class SmtpSettings(_Strict):
    host: str = "localhost"
    port: int = Field(25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password_env: str = "DIGEST_SMTP_PASSWORD"
    timeout: float = Field(30.0, gt=0, le=3600)
    ca_file: str | None = None  # PEM certificates to trust instead of the system's (a private relay)
    pool_size: int = Field(1, ge=1, le=16)  # SMTP connections per `digest send`, one sending thread each
    rate_limit: float = Field(0.0, ge=0, le=100_000)  # messages per second (token bucket, 1 s burst); 0 = off
    window_limit: int = Field(0, ge=0, le=10**9)  # at most this many messages per sliding window; 0 = off
    window_seconds: float = Field(3600.0, gt=0, le=31 * DAY)  # length of that sliding window

    @field_validator("rate_limit")
    @classmethod
    def _workable_rate(cls, v: float) -> float:
        if 0 < v < 1 / 3600:  # the bucket would wait longer than any run lasts (and past what sleep takes)
            raise ValueError("must be 0 (no limit) or at least one message an hour (0.000278)")
        return v


class MailSettings(_Strict):
    transport: Literal["outbox", "smtp"] = "outbox"
    from_address: str = "Trending Papers <digest@localhost>"
    reply_to: str | None = None
    list_id: str = "Trending papers digest <digest.localhost>"
    unsubscribe_mailto: str = "unsubscribe@localhost"
    outbox_dir: str = "outbox"
    dkim_key_file: str | None = None  # PEM private key (outside the repository); signing is off without it
    dkim_selector: str | None = None  # required with dkim_key_file: the key is at SELECTOR._domainkey.DOMAIN
    dkim_domain: str | None = None  # d= of the signature; default: the domain of from_address
    max_attempts: int = Field(5, ge=1, le=50)  # tries per delivery on 4xx replies before it is failed
    retry_backoff: float = Field(300.0, ge=0, le=7 * DAY)  # seconds before the first retry, doubling
    retry_max_backoff: float = Field(21600.0, ge=0, le=31 * DAY)  # cap on that wait
    # a crashed sender's claimed deliveries are resumed after this
    lease_seconds: float = Field(600.0, gt=0, le=DAY)
    # sending processes per `digest send`, each with smtp.pool_size connections
    workers: int = Field(1, ge=1, le=16)
    # seconds a chat webhook (Slack, Discord...) may take for the whole request, reply included
    webhook_timeout: float = Field(10.0, gt=0, le=600)
    bounce_hard_limit: int = Field(1, ge=1, le=1000)  # suppress an address after this many hard bounces
    bounce_soft_limit: int = Field(3, ge=1, le=1000)  # ... or after this many soft bounces
    bounce_window_days: int = Field(30, ge=1, le=3650)  # bounces older than this no longer count
    smtp: SmtpSettings = SmtpSettings()

    @field_validator("from_address", "reply_to")
    @classmethod
    def _named_address(cls, v: str | None) -> str | None:
        return None if v is None else check_address(v, named=True)

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _bare_address(cls, v: str) -> str:
        return check_address(v, named=False)

    @field_validator("dkim_selector", "dkim_domain")
    @classmethod
    def _dns_name(cls, v: str | None) -> str | None:
        if v is not None and not _DNS_NAME.fullmatch(v):
            raise ValueError("must be a DNS name (letters, digits and hyphens, dot-separated)")
        return v

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, v: str) -> str:
        if CONTROL.search(v) or not _LIST_ID.fullmatch(v.strip()):
            raise ValueError('must be "Name <label.example.org>" (RFC 2919: a dotted id in angle brackets)')
        return v.strip()


class WebSettings(_Strict):
    base_url: str = "http://localhost:8000"
    secret_env: str = "DIGEST_SECRET"
    # a file holding the secret; without it (and without $DIGEST_SECRET) the database keeps its own
    secret_file: str | None = None

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class DigestSettings(_Strict):
    site_name: str = "Trending Papers"
    max_items: int = Field(10, ge=1, le=100)
    trending_items: int = Field(3, ge=0, le=20)  # "also trending" block under the personal picks
    first_edition_days: int = Field(7, ge=1, le=90)  # how far back a first edition may look
    max_lookback_days: int = Field(14, ge=1, le=365)  # bound on a catch-up edition
    excerpt_chars: int = Field(320, ge=80, le=2000)
    # auto: lexical + MiniLM (hybrid) whenever the bundled ONNX model can run (every install), else
    # lexical only ("hybrid" where it cannot is refused at start: digest.pipeline.load_settings)
    ranker: Literal["auto", "lexical", "hybrid"] = "auto"


class RankingSettings(_Strict):
    """`[ranking]`: the sentence embedding model of the hybrid ranker and where it runs.

    `model` is the bundled all-MiniLM-L6-v2 (int8 ONNX, no torch) by default, the path of that same
    pinned `.onnx` file, or a sentence-transformers model (the `semantic` extra): a name already in
    the Hugging Face cache (nothing is downloaded) or the path of a saved model directory. Vectors
    are stored per model: changing it embeds papers again, lazily (digest.store.vectors). Whether the
    model loads is checked at start when the ranker uses it (digest.pipeline.load_settings)."""

    model: str = "all-MiniLM-L6-v2"
    device: Literal["cpu", "cuda"] = "cpu"

    @field_validator("model")
    @classmethod
    def _named(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a sentence-transformers model or the path of one")
        return v.strip()

    @field_validator("device")
    @classmethod
    def _cuda_present(cls, v: str) -> str:
        if v == "cuda" and not _cuda_available():
            raise ValueError('"cuda" asked for, but torch sees no CUDA device here (use "cpu")')
        return v


def _cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA device (torch is imported only to answer this)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class RenderSettings(_Strict):
    """`[render]`: an admin's templates. `templates_dir` is a folder whose files override the shipped
    templates of the same name (digest.mjml, digest.txt, the pages, the notice emails), file by file;
    default `./templates` when it exists. Overrides are checked when a command that renders starts."""

    templates_dir: str | None = None

    @field_validator("templates_dir")
    @classmethod
    def _a_folder(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_dir():
            raise ValueError(f"no folder {v!r} (copy the templates you change into it: see README, "
                             "Templates)")
        return v


class SchedulerSettings(_Strict):
    """`digest scheduler`: when it ingests, plans and sends, and where it keeps its job state."""

    tick_seconds: float = Field(300.0, ge=0.1, le=86400)  # plan and send what is due this often
    housekeeping: str = "17 3 * * *"  # cron: release stale leases, prune the job-run log
    timezone: str = "UTC"  # zone the cron schedules (sources' `schedule`, `housekeeping`) are read in
    job_store: Literal["memory", "database"] = "memory"  # database: keep job state in [database]
    ingest_on_start: bool = True  # ingest every source once at start, then on its schedule
    # a run missed by less than this still runs, once
    misfire_grace_seconds: int = Field(3600, ge=1, le=int(7 * DAY))
    keep_runs_days: int = Field(30, ge=1, le=3650)  # how long the job-run log is kept
    workers: int = Field(4, ge=1, le=32)  # threads that run jobs

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        return check_zone(v)


class MetricsSettings(_Strict):
    """Prometheus metrics: `/metrics` on `digest serve`, and a metrics server of `digest scheduler`."""

    enabled: bool = True
    # who may scrape `digest serve`'s /metrics (client networks, after a proxy on 127.0.0.1 says who
    # the client is); anyone else gets 404, so a public site does not publish its figures
    allow: list[str] = ["127.0.0.1/32", "::1/128"]
    scheduler_host: str = "127.0.0.1"  # where `digest scheduler` serves /metrics
    scheduler_port: int = Field(9108, ge=0, le=65535)  # 0: no metrics server in the scheduler

    @field_validator("allow")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"not a network address {net!r} (use CIDR, e.g. 10.0.0.0/8)") from None
        return v


def _default_sources() -> dict[str, SourceSettings]:
    return {"sample": FileSource(type="file", paths=bundled_listings())}


class Settings(_Strict):
    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    sources: dict[str, SourceSettings] = Field(default_factory=_default_sources)
    mail: MailSettings = MailSettings()
    web: WebSettings = WebSettings()
    digest: DigestSettings = DigestSettings()
    ranking: RankingSettings = RankingSettings()
    render: RenderSettings = RenderSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    metrics: MetricsSettings = MetricsSettings()
    path: str | None = None  # where it was loaded from, for `digest status`

    # the secrets links are signed and checked with, newest (signing) first: bound by `use_secrets` when
    # the database is opened (digest.usecases.setup), which keeps the generated one
    _secrets: tuple[str, ...] | None = PrivateAttr(default=None)
    # what an admin should know about how these settings were resolved (the database found under an
    # earlier name, a secret set over the database's own): one line each, printed by the CLI at start
    _notices: list[str] = PrivateAttr(default_factory=list)

    def notice(self, line: str) -> None:
        self._notices.append(line)
        _log.info("%s", line)

    def take_notices(self) -> list[str]:
        """The notices not yet shown, once."""
        taken, self._notices = self._notices, []
        return taken

    def configured_secret(self) -> str | None:
        """The secret the admin set: `$DIGEST_SECRET` (web.secret_env), else `web.secret_file`, else None
        (the database's own is used). A configured `web.secret_file` must exist: a typo in its path must
        not rotate the secret and void every link already mailed."""
        value = os.environ.get(self.web.secret_env)
        if value:
            return value
        if self.web.secret_file:
            return _read_secret(Path(self.web.secret_file), f"web.secret_file: {self.web.secret_file}",
                                self.web.secret_env)
        return None

    def use_secrets(self, keys: tuple[str, ...]) -> None:
        """Sign with `keys[0]` and accept all of `keys` (the database's, found when it is opened)."""
        self._secrets = tuple(keys)

    def secrets(self) -> tuple[str, ...]:
        """Every secret a link or a sealed URL is checked with, the signing one first."""
        if self._secrets:
            return self._secrets
        configured = self.configured_secret()
        if configured:
            return (configured,)
        raise ConfigError(f"no signing secret yet: set ${self.web.secret_env}, or open the database first "
                          "(it keeps the one it generated)")

    def secret(self) -> str:
        """The secret new links and sealed URLs are signed with."""
        return self.secrets()[0]

    def earlier_secret_file(self) -> Path:
        """Where earlier versions kept a generated secret: `.digest-secret` beside the SQLite database
        (the working directory for PostgreSQL). Read once to adopt it; never written."""
        return self._state_dir() / ".digest-secret"

    def warnings(self) -> list[str]:
        """What works but should not go to real subscribers (`digest send`, `digest run` and the scheduler
        print these at start)."""
        if self.mail.transport == "smtp" and not self.web.base_url.lower().startswith("https://"):
            return [f"web.base_url is {self.web.base_url}: digests go out without the RFC 8058 one-click "
                    "unsubscribe (List-Unsubscribe-Post needs an https URL), and links travel in clear; "
                    "serve the pages over https and set web.base_url to that address"]
        return []

    def smtp_password(self) -> str | None:
        return os.environ.get(self.mail.smtp.password_env) or None

    def _state_dir(self) -> Path:
        url = self.database.url
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            return Path(url.removeprefix("sqlite:///")).resolve().parent
        return Path.cwd()


def _read_secret(path: Path, what: str, env: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"{what}: cannot read the signing secret: {reason} "
                          f"(create the file, or set ${env})") from None
    if not value:
        raise ConfigError(f"{what}: the signing secret file is empty")
    return value


def _describe(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"] if p not in SOURCE_NAMES)
    reason = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        reason = "unknown key"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{origin}: {key}: {reason}{more}"


def from_dict(data: dict, origin: str = "config") -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, origin)) from None


def load(path: str | os.PathLike | None = None) -> Settings:
    """Load settings from an explicit path, $DIGEST_CONFIG, ./config.toml, or defaults."""
    if path is None:
        path = os.environ.get("DIGEST_CONFIG") or ("config.toml" if Path("config.toml").exists() else None)
    if path is None:
        return _default_database(Settings(), {})
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        # utf-8-sig: a file saved with a byte-order mark (Notepad) reads like any other
        data = tomllib.loads(p.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{p}: not valid TOML: {err}") from None
    data["path"] = str(p)
    return _default_database(from_dict(data, str(p)), data)


def _default_database(settings: Settings, data: dict) -> Settings:
    """With no `database.url` set, ./digest.db; where only a database under an earlier default name
    exists, that one, said in one line (an upgrade must not start on a new, empty database)."""
    if "url" in (data.get("database") or {}):
        return settings
    found = [n for n in EARLIER_DEFAULTS if Path(n).is_file()]
    if not found:
        return settings
    if Path(DEFAULT_DATABASE).exists():
        settings.notice(f"using {DEFAULT_DATABASE}; {found[0]} beside it is a database made by an earlier "
                        "version under another name and is not used")
        return settings
    moved = settings.model_copy(update={"database": DatabaseSettings(url=f"sqlite:///{found[0]}")})
    moved.notice(f"using {found[0]} (made by an earlier version, whose default name it was); rename it to "
                 f"{DEFAULT_DATABASE} (with its -wal and -shm files) or set database.url")
    return moved
