"""Where the client finds its server and credentials, and the defaults it uses.

Each setting is taken from the first place that has it: the constructor's
arguments, then the environment (``CLOCKWORK_URL``, ``CLOCKWORK_TOKEN``, or the
original client's ``CLOCKWORK_EMAIL`` + ``CLOCKWORK_API_KEY``), then the file
``$XDG_CONFIG_HOME/clockwork/config.toml`` (``~/.config/clockwork/config.toml``;
``CLOCKWORK_CONFIG_FILE`` names another one)::

    url = "https://clockwork.example.org"
    token = "cw_..."
    timeout = 10
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clockwork_tools._exceptions import ConfigurationError

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
#: Longest wait between two retries, whatever the server's Retry-After says.
MAX_BACKOFF = 30.0


def default_config_path(env: Mapping[str, str]) -> Path:
    explicit = env.get("CLOCKWORK_CONFIG_FILE")
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "clockwork" / "config.toml"


_LINE = re.compile(
    r"""^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*
        (?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([-+]?[0-9]+(?:\.[0-9]+)?)|(true|false))\s*(?:\#.*)?$""",
    re.VERBOSE,
)


def parse_simple_toml(text: str, source: str = "config") -> dict[str, Any]:
    """The top-level ``key = value`` lines of a TOML file (strings, numbers, booleans).

    Used on Python < 3.11 without ``tomli``: enough for this client's file.
    Grammar: ``key = "string" | 'string' | number | true | false``, ``#`` comments,
    blank lines; a ``[table]`` header ends the top level.
    """
    out: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            break
        match = _LINE.match(line)
        if match is None:
            raise ConfigurationError(f"{source}:{number}: cannot read {stripped!r}")
        key, dq, sq, num, boolean = match.groups()
        if dq is not None:
            value: Any = bytes(dq, "utf-8").decode("unicode_escape")
        elif sq is not None:
            value = sq
        elif num is not None:
            value = float(num) if "." in num else int(num)
        else:
            value = boolean == "true"
        out[key] = value
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in ``path`` ({} if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on old Pythons only
        try:
            import tomli as tomllib
        except ImportError:
            return parse_simple_toml(text, str(path))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    return {k: v for k, v in data.items() if not isinstance(v, dict)}


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one client."""

    url: str
    token: str | None = None
    email: str | None = None
    api_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    source: str = "arguments"

    @property
    def has_credentials(self) -> bool:
        return bool(self.token or (self.email and self.api_key))


def resolve(
    url: str | None = None,
    token: str | None = None,
    *,
    email: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Resolve the settings: arguments, then environment, then the config file."""
    env = os.environ if env is None else env
    layers: list[tuple[str, dict[str, Any]]] = [
        ("arguments", {"url": url, "token": token, "email": email, "api_key": api_key}),
        (
            "environment",
            {
                "url": env.get("CLOCKWORK_URL"),
                "token": env.get("CLOCKWORK_TOKEN"),
                "email": env.get("CLOCKWORK_EMAIL"),
                "api_key": env.get("CLOCKWORK_API_KEY"),
                "timeout": env.get("CLOCKWORK_TIMEOUT"),
            },
        ),
    ]
    path = config_file if config_file is not None else default_config_path(env)
    file_values = read_config_file(path)
    unknown = sorted(set(file_values) - {"url", "token", "email", "api_key", "timeout"})
    if unknown:
        raise ConfigurationError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    layers.append((str(path), file_values))

    def first(key: str) -> tuple[Any, str]:
        for source, values in layers:
            value = values.get(key)
            if value not in (None, ""):
                return value, source
        return None, ""

    found_url, url_source = first("url")
    if not found_url:
        raise ConfigurationError(
            "no Clockwork server: pass url=..., set CLOCKWORK_URL, or write "
            f'url = "https://..." in {path}'
        )
    # Credentials come as a whole from one layer: a token, or an email + key pair.
    cred: dict[str, Any] = {}
    for _source, values in layers:
        if values.get("token"):
            cred = {"token": str(values["token"])}
            break
        if values.get("email") and values.get("api_key"):
            cred = {"email": str(values["email"]), "api_key": str(values["api_key"])}
            break
    if timeout is None:
        raw_timeout, _ = first("timeout")
        try:
            timeout = float(raw_timeout) if raw_timeout is not None else DEFAULT_TIMEOUT
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"timeout must be a number of seconds, not {raw_timeout!r}"
            ) from None
    if timeout <= 0:
        raise ConfigurationError("timeout must be positive")
    return Settings(
        url=str(found_url).rstrip("/"), timeout=float(timeout), source=url_source, **cred
    )
