"""``axc up`` as a newcomer meets it: every start-up failure reported before anything says
the center is up, with the setting to change; the operator's token reissued on demand."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

from axcenter.service.bootstrap import OPERATIONS_ORG
from axcenter.settings import Settings
from axcenter.store.accounts import authenticate
from axcenter.store.db import Store


def _up(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "axcenter.cli.main", "up", "--log-level", "warning", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_taken_port_is_reported_first_and_names_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = _up("--data-dir", str(tmp_path / "data"), "--port", str(port))
    assert done.returncode == 1
    said = " ".join((done.stdout + done.stderr).split())
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in said
    assert "--port or AXC_PORT" in said
    assert "is up" not in said and "token" not in said
    assert not (tmp_path / "data").exists()  # nothing was created before the refusal


def test_an_unreachable_database_is_reported_before_up(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    done = _up("--data-dir", str(tmp_path), "--port", str(port), "--database-url", url)
    assert done.returncode == 1
    said = " ".join((done.stdout + done.stderr).split())
    assert "error: the center could not start" in said and "AXC_DATABASE_URL" in said
    assert "is up" not in said and "Traceback" not in said


def test_the_operator_token_is_reissued_for_who_reads_the_data_dir(tmp_path: Path) -> None:
    tokens = []
    for _ in range(2):
        done = _up("--data-dir", str(tmp_path), "--operator-token")
        assert done.returncode == 0, done.stderr
        found = re.fullmatch(rf"operator \(operator, {OPERATIONS_ORG}\): (axc_\S+)\n", done.stdout)
        assert found, done.stdout
        assert done.stderr == "", done.stderr  # no log lines around the one that matters
        tokens.append(found.group(1))
    assert tokens[0] != tokens[1]
    store = Store(Settings(data_dir=tmp_path).resolved_database_url)
    try:
        with store.read() as session:
            for token in tokens:  # the first one stays valid: revoking is the operator's call
                who = authenticate(session, token)
                assert who is not None and who.name == "operator"
    finally:
        store.dispose()
