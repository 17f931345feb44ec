"""The one configuration loader for the scraper, the web app and the scripts.

Layers, lowest first: built-in defaults, the TOML file (``CLOCKWORK_CONFIG`` or
an explicit path), then environment overrides for what deployments set per
host (``MONGODB_URI``, secrets). The result is validated as a whole: every
problem is collected and reported with its key, never just the first one.

Nothing is read at import time; callers call :func:`load_config`.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.networks import IPvAnyNetwork

CONFIG_ENV = "CLOCKWORK_CONFIG"

#: Environment variables that override a key of the file: ``VAR -> dotted.key``.
ENV_OVERRIDES: dict[str, str] = {
    "MONGODB_URI": "database.uri",
    "CLOCKWORK_DB_NAME": "database.name",
    "CLOCKWORK_SECRET_KEY": "web.secret_key",
    "CLOCKWORK_DEV_LOGIN": "web.dev_login",
    "CLOCKWORK_OIDC_CLIENT_ID": "login.client_id",
    "CLOCKWORK_OIDC_CLIENT_SECRET": "login.client_secret",
    "CLOCKWORK_OIDC_DISCOVERY_URL": "login.discovery_url",
    "CLOCKWORK_METRICS_TOKEN": "web.metrics_token",
    "CLOCKWORK_TRUSTED_PROXY_HOPS": "web.trusted_proxy_hops",
    "CLOCKWORK_ANONYMIZE_KEY": "scraper.anonymize_key",
    "CLOCKWORK_SMTP_PASSWORD": "notifications.smtp.password",
    "CLOCKWORK_SLACK_WEBHOOK_URL": "notifications.slack.webhook_url",
    "CLOCKWORK_RABBITMQ_URL": "notifications.rabbitmq.url",
    "CLOCKWORK_WEBHOOK_SECRET": "notifications.webhook.secret",
    "ELASTICSEARCH_URL": "scraper.elasticsearch_url",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ConfigError(Exception):
    """A configuration that cannot be used; ``problems`` lists ``(key, reason)``."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{key}: {reason}" for key, reason in problems]
        where = f" in {source}" if source else ""
        super().__init__(
            f"{len(problems)} configuration problem(s){where}:\n  " + "\n  ".join(lines)
        )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- sections


class DatabaseConfig(_Section):
    uri: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    name: str = "clockwork"
    #: Milliseconds the driver waits for a server before giving up.
    timeout_ms: Annotated[int, Field(gt=0)] = 5000

    @field_validator("uri")
    @classmethod
    def _mongodb_uri(cls, v: str) -> str:
        if not v.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return v


class WebConfig(_Section):
    secret_key: SecretStr | None = None
    #: Public address of the app, used in links (emails, ``next`` links).
    base_url: str = "http://127.0.0.1:5000"
    #: Development login: only when set, and only from loopback.
    dev_login: bool = False
    #: "preprovisioned": only users already in the database may log in.
    provisioning: Literal["preprovisioned", "on_first_login"] = "preprovisioned"
    default_language: Literal["en", "fr"] = "en"
    per_page_default: Annotated[int, Field(ge=1, le=1000)] = 50
    #: Bearer token that /metrics accepts (or an allowed address).
    metrics_token: SecretStr | None = None
    #: Client addresses (or networks) /metrics answers without the token: the
    #: real client's address, so behind a proxy set ``trusted_proxy_hops``.
    metrics_allow: list[str] = ["127.0.0.1", "::1"]
    #: Per-user series (``clockwork_user_jobs``, labelled with Slurm usernames)
    #: in /metrics; off by default: who runs what is not for every scraper.
    metrics_per_user_labels: bool = False
    #: Reverse proxies in front of the app that append to X-Forwarded-For and
    #: set X-Forwarded-Proto. 0: those headers are ignored (the peer is the
    #: client). Set it to the number of proxies, never more: each trusted hop
    #: lets whoever reaches the app directly choose their address.
    trusted_proxy_hops: Annotated[int, Field(ge=0, le=10)] = 0
    #: Max bytes of the user props of one job.
    props_max_bytes: Annotated[int, Field(gt=0)] = 2048


class LoginConfig(_Section):
    provider_name: str = "google"
    discovery_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    client_id: str = ""
    client_secret: SecretStr | None = None
    scope: str = "openid email profile"
    allowed_email_domains: list[str] = []
    #: Timeout of each call to the provider (discovery, token, keys).
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    #: After this many failed authentications of one (client address, claimed
    #: identity) within a window of ``failure_window_s``, its further failures
    #: get 429 until the window ends. Counted in the database (all workers and
    #: hosts together); a valid credential is never refused.
    failure_limit: Annotated[int, Field(ge=1)] = 10
    failure_window_s: Annotated[float, Field(gt=0)] = 60.0


class SmtpConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 25
    username: str = ""
    password: SecretStr | None = None
    starttls: bool = False
    ssl: bool = False
    sender: str = "clockwork@localhost"
    timeout_s: Annotated[float, Field(gt=0)] = 10.0


class SlackConfig(_Section):
    webhook_url: str = ""
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    #: A user's own Slack webhook URL must start with one of these; its host must
    #: resolve to public addresses only (see ``clockwork_web/notify/urls.py``).
    #: The operator's ``webhook_url`` above is trusted and not checked.
    allowed_url_prefixes: list[str] = ["https://hooks.slack.com/"]
    #: Non-public networks a user's Slack URL may reach anyway, e.g. "10.1.2.0/24".
    allowed_networks: list[IPvAnyNetwork] = []


class RabbitMQConfig(_Section):
    url: str = ""
    queue: str = "clockwork.job_events"
    timeout_s: Annotated[float, Field(gt=0)] = 10.0


class WebhookConfig(_Section):
    secret: SecretStr | None = None
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    #: A user's webhook URL must start with one of these. Empty (the default):
    #: users may not name webhook URLs at all. The host must resolve to public
    #: addresses only (see ``clockwork_web/notify/urls.py``).
    allowed_url_prefixes: list[str] = []
    #: Non-public networks (loopback, private...) a user's webhook may reach anyway.
    allowed_networks: list[IPvAnyNetwork] = []


class NotificationsConfig(_Section):
    smtp: SmtpConfig = SmtpConfig()
    slack: SlackConfig = SlackConfig()
    rabbitmq: RabbitMQConfig = RabbitMQConfig()
    webhook: WebhookConfig = WebhookConfig()
    max_attempts: Annotated[int, Field(ge=1)] = 8
    backoff_base_s: Annotated[float, Field(gt=0)] = 30.0
    #: A delivery left ``sending`` longer than this belonged to a notifier that died.
    lease_s: Annotated[float, Field(gt=0)] = 120.0
    #: Events read per pass of the notifier.
    batch_size: Annotated[int, Field(ge=1)] = 200


class ScraperConfig(_Section):
    #: A scrape re-reads this many minutes before the last successful one.
    overlap_minutes: Annotated[int, Field(ge=0)] = 15
    #: On the very first scrape of a cluster, how far back to read.
    initial_lookback_days: Annotated[int, Field(ge=0)] = 7
    #: A scrape lease older than this is taken over (the holder died).
    lease_seconds: Annotated[int, Field(gt=0)] = 1800
    #: Key of the username pseudonymization (HMAC); required if any cluster uses it.
    anonymize_key: SecretStr | None = None
    prometheus_textfile: str = ""
    elasticsearch_url: str = ""
    #: Jobs stored per round trip (one find + one bulk write per batch).
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000


class SshConfig(_Section):
    host: str
    port: Annotated[int, Field(gt=0, lt=65536)] = 22
    user: str
    key_file: str = ""
    known_hosts: str = "~/.ssh/known_hosts"
    connect_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    command_timeout_s: Annotated[float, Field(gt=0)] = 300.0


class AnonymizeConfig(_Section):
    usernames: Literal["keep", "pseudonymize"] = "keep"
    job_names: Literal["keep", "drop", "hash"] = "keep"
    paths: Literal["keep", "drop", "hash"] = "keep"
    comments: Literal["keep", "drop", "hash"] = "keep"


class SubmitConfig(_Section):
    backend: Literal["none", "local", "ssh", "slurmrestd"] = "none"
    #: How the local backend becomes the user: ``runuser -u USER`` (root) or sudo.
    local_identity: Literal["uid", "sudo"] = "uid"
    rest_url: str = "http://127.0.0.1:6820"
    rest_api_version: str = "v0.0.38"
    #: HS256 key shared with slurmctld to mint per-user JWTs.
    jwt_key_file: str = ""
    jwt_lifetime_s: Annotated[int, Field(gt=0)] = 300
    #: Directories the output-file API may read (job outputs must lie below).
    output_roots: list[str] = []
    timeout_s: Annotated[float, Field(gt=0)] = 30.0
    #: Working directory of a job that names none; empty = the user's home directory.
    default_cwd: str = ""
    #: Largest file (or range) the output-file API returns in one response.
    max_file_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    #: A submission left PENDING (cluster unreachable) is retried this often.
    retry_every_s: Annotated[float, Field(gt=0)] = 60.0


class ClusterConfig(_Section):
    display_name: str = ""
    timezone: str = "UTC"
    fetch: Literal["local", "ssh", "file", "pyslurm"] = "local"
    #: Slurm version ("22.05"); empty = detect with ``sacct -V``.
    slurm_version: str = ""
    jobs_format: Literal["psv", "json"] = "psv"
    nodes_format: Literal["sinfo-json", "sinfo-psv", "scontrol"] = "scontrol"
    ssh: SshConfig | None = None
    #: For ``fetch = "file"``: where another process leaves its reports.
    report_dir: str = ""
    anonymize: AnonymizeConfig = AnonymizeConfig()
    submit: SubmitConfig = SubmitConfig()
    #: Documentation links and GPU specs shown on the pages.
    docs_url: str = ""

    @model_validator(mode="after")
    def _fetcher_needs(self) -> ClusterConfig:
        if self.fetch == "ssh" and self.ssh is None:
            raise ValueError('fetch = "ssh" needs an [clusters.NAME.ssh] table')
        if self.submit.backend == "ssh" and self.ssh is None:
            raise ValueError('submit.backend = "ssh" needs an [clusters.NAME.ssh] table')
        if self.fetch == "file" and not self.report_dir:
            raise ValueError('fetch = "file" needs report_dir')
        return self


class SubmissionTemplate(_Section):
    description: str = ""
    script: str = ""
    slurm: dict[str, Any] = {}


class Config(_Section):
    database: DatabaseConfig = DatabaseConfig()
    web: WebConfig = WebConfig()
    login: LoginConfig = LoginConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    scraper: ScraperConfig = ScraperConfig()
    clusters: dict[str, ClusterConfig] = {}
    templates: dict[str, SubmissionTemplate] = {}

    @model_validator(mode="after")
    def _anonymize_key(self) -> Config:
        needs_key = [
            name
            for name, c in self.clusters.items()
            if c.anonymize.usernames == "pseudonymize"
            or "hash" in (c.anonymize.job_names, c.anonymize.paths, c.anonymize.comments)
        ]
        if needs_key and self.scraper.anonymize_key is None:
            raise ValueError(
                f"clusters {needs_key} pseudonymize or hash: set scraper.anonymize_key "
                "(or CLOCKWORK_ANONYMIZE_KEY)"
            )
        return self


# --------------------------------------------------------------------------- loading


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _key_of(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read, override and validate the configuration.

    ``path`` defaults to ``$CLOCKWORK_CONFIG``; with neither, only defaults and
    environment apply. ``overrides`` (dotted keys) come last; tests use them.
    Raises :class:`ConfigError` listing every problem.
    """
    env = os.environ if env is None else env
    raw_path = path if path is not None else env.get(CONFIG_ENV)
    data: dict[str, Any] = {}
    source = ""
    if raw_path:
        file = Path(raw_path).expanduser()
        source = str(file)
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError([("(file)", f"{file} does not exist")], source) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([("(syntax)", str(exc))], source) from None
    for var, dotted in ENV_OVERRIDES.items():
        if env.get(var):
            _set_dotted(data, dotted, env[var])
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    # Checked apart so that they are reported together with pydantic's findings.
    problems = [
        (f"clusters.{name}", "invalid cluster name: use letters, digits, _ . - (max 63)")
        for name in (data.get("clusters") or {})
        if not _NAME.match(str(name))
    ]
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += [
            (_key_of(err["loc"]), err["msg"].removeprefix("Value error, ")) for err in exc.errors()
        ]
    if problems:
        raise ConfigError(problems, source)
    return config


def load_config_or_exit(path: str | os.PathLike[str] | None = None) -> Config:
    """For command-line entry points: print every problem and exit 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"clockwork: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    """``python -m clockwork_core.config [FILE]``: check a configuration file."""
    args = sys.argv[1:] if argv is None else argv
    try:
        config = load_config(args[0] if args else None)
    except ConfigError as exc:
        print(f"clockwork: {exc}", file=sys.stderr)
        return 2
    print(f"configuration OK: {len(config.clusters)} cluster(s): {', '.join(config.clusters)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
