"""Where the client finds the server URL and the user's token.

Resolution, per value: explicit argument, then the environment (``AXC_URL``, ``AXC_TOKEN``),
then the config file ``$XDG_CONFIG_HOME/axcenter/config.json`` (default
``~/.config/axcenter/config.json``) that ``axc login`` writes. The token is a secret, so the
file is created with mode 0600 in a directory with mode 0700.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ENV_TOKEN",
    "ENV_URL",
    "Config",
    "ConfigError",
    "config_path",
    "load_file",
    "normalize_url",
    "resolve",
    "save",
]

ENV_URL = "AXC_URL"
ENV_TOKEN = "AXC_TOKEN"  # noqa: S105 - the variable's name, not a secret

_HINT = f"run `axc login` or set {ENV_URL} and {ENV_TOKEN}"


class ConfigError(Exception):
    """The client cannot be configured: a value is missing or the config file is unreadable."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything needed to talk to one axcenter server as one user."""

    url: str
    token: str

    def __repr__(self) -> str:  # never print the token in tracebacks or logs
        return f"Config(url={self.url!r}, token='***')"


def normalize_url(url: str) -> str:
    """``host:port`` becomes ``http://host:port``; no trailing slash."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file, following the XDG base-directory convention."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "axcenter" / "config.json"


def load_file(path: Path | None = None) -> dict[str, str]:
    """The values stored in the config file; empty when there is no file."""
    path = config_path() if path is None else path
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid JSON ({exc}); {_HINT}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} should hold a JSON object; {_HINT}")
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def save(config: Config, path: Path | None = None) -> Path:
    """Write the config file atomically, readable by its owner only; return its path."""
    path = config_path() if path is None else path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    payload = json.dumps({"url": config.url, "token": config.token}, indent=2) + "\n"
    # mkstemp creates the file with mode 0600, so the token is never world-readable.
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolve(
    url: str | None = None,
    token: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> Config:
    """Pick URL and token from arguments, then environment, then the config file."""
    env = os.environ if env is None else env
    url = url or env.get(ENV_URL) or None
    token = token or env.get(ENV_TOKEN) or None
    if url is None or token is None:
        stored = load_file(config_path(env) if path is None else path)
        url = url or stored.get("url") or None
        token = token or stored.get("token") or None
    missing = [name for name, value in (("server URL", url), ("token", token)) if not value]
    if url is None or token is None:
        raise ConfigError(f"no {' and no '.join(missing)} configured: {_HINT}")
    return Config(url=normalize_url(url), token=token.strip())
