"""The fixtures of the CLI tests: a ``FakeServer`` every client is routed to, and ``axc``
to run a command against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from axcenter.cli import main
from axcenter.client import Client, Config

from . import TOKEN, URL, FakeServer


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def configs(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Config]]:
    """Route every client to the fake; record the config each command resolved."""
    seen: list[Config] = []

    def factory(cfg: Config) -> Client:
        seen.append(cfg)
        return Client(cfg.url, cfg.token, transport=fake.transport)

    monkeypatch.setattr(main, "client_factory", factory)
    yield seen


@pytest.fixture
def xdg(tmp_path: Path) -> Path:
    return tmp_path / "xdg"


@pytest.fixture
def axc(configs: list[Config], xdg: Path) -> Any:
    """Run ``axc ARGS`` with the fake server configured through the environment."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str | None] | None = None, **kwargs: Any) -> Result:
        full_env: dict[str, str | None] = {
            "AXC_URL": URL,
            "AXC_TOKEN": TOKEN,
            "XDG_CONFIG_HOME": str(xdg),
            "COLUMNS": "200",
        }
        full_env.update(env or {})
        return runner.invoke(main.app, list(args), env=full_env, **kwargs)

    return run
