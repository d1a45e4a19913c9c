"""The dashboard's tests reuse the API's real center (both databases) and tenants.

The browser suites (``test_browser*.py``) share one real ``axc up --demo`` process
(``demo``), its accounts' tokens (``demo_tokens``, with an organization admin added) and
one Chromium (``chromium``) for the whole run: starting them costs more than most tests.
The demo center signs people on with an OpenID provider run here (``oidc-provider-mock``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import center, tenants
from tests.conftest import service_env
from tests.e2e.conftest import Service

__all__ = ["center", "chromium", "demo", "demo_tokens", "provider_url", "tenants"]

CHROMIUM = "/usr/bin/chromium"
DEMO_GPUS = "A100:4,H100:4"


@pytest.fixture(scope="session")
def provider_url() -> Iterator[str]:
    """A real OpenID provider on this machine (authlib's server, behind the mock's
    pages), for the demo center's single sign-on."""
    import oidc_provider_mock
    import werkzeug.serving

    server = werkzeug.serving.make_server(
        "127.0.0.1", 0, oidc_provider_mock.app(require_nonce=True), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory, provider_url: str) -> Iterator[Service]:
    if not Path(CHROMIUM).exists():
        pytest.skip("no /usr/bin/chromium: scripts/test installs it (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("web")
    config = tmp / "center.yaml"
    config.write_text(
        f"""pools:
  - name: local
    engine: local
    gpus: "{DEMO_GPUS}"
sign_in:
  oidc:
    issuer: {provider_url}
    client_id: axcenter
    client_secret: demo-secret
    label: KISTI SSO
    email_domains:
      Hanbit Motors: [hanbit.example]
"""
    )
    env = service_env()
    env.update(
        {
            "AXC_DATABASE_URL": f"sqlite:///{tmp / 'axcenter.db'}",
            "AXC_KILL_GRACE_S": "1",
            "XDG_CONFIG_HOME": str(tmp / "cfg"),
        }
    )
    svc = Service(data_dir=tmp / "data", env=env, gpus=DEMO_GPUS, options=["--config", str(config)])
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def demo_tokens(demo: Service) -> dict[str, str]:
    """The demo accounts' tokens, as ``axc up --demo`` wrote them (never to its log), and
    an organization admin of Hanbit made here."""
    log = (demo.data_dir / "first-start-tokens").read_text()
    found = dict(re.findall(r"^#\s+(\S+) \([a-z_]+, [^)]*\): (axc_\S+)$", log, re.M))
    assert {"operator", "pm-kim", "reviewer-lee", "hanbit-engineer", "daeil-engineer"} <= set(
        found
    ), log
    with httpx.Client(
        base_url=f"{demo.url}/api/v1",
        headers={"Authorization": f"Bearer {found['operator']}"},
        timeout=30,
    ) as op:
        made = op.post(
            "/users",
            json={"name": "hanbit-admin", "role": "org_admin", "organization": "Hanbit Motors"},
        )
        assert made.status_code == 201, made.text
        found["hanbit-admin"] = made.json()["token"]
    return found


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no /usr/bin/chromium: scripts/test installs it (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()
