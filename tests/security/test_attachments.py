"""A request's attached files are out of every job's reach (docs/security.md): Bolt's
member, from a real job running as Bolt's unix account, tries to list and read the
proposal Acme's admin attached, by its exact path; every attempt must fail, while the
applicant reads it through the API.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from axcenter.service.center import Center
from tests.api.conftest import Tenants
from tests.api.test_allocations import REQUESTS, file_request, setup
from tests.api.test_programs import ok
from tests.security.test_hostile_tenant import center, client, log_of, submit, tenants, wait

__all__ = ["center", "client", "tenants"]  # the fixtures of the hostile-tenant suite

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching identities needs root")

SECRET = b"%PDF-1.7\nAcme confidential budget: 1,234,567,890 won\n"

PROBES = r"""
try() {
  name=$1; shift
  if "$@" >/dev/null 2>&1; then echo "OPEN $name"; else echo "blocked $name"; fi
}
try read-attachment cat "$FILE"
try list-request-folder ls "$FOLDER"
try list-attachments ls "$ATTACHMENTS"
try stat-attachment stat "$FILE"
try copy-attachment cp "$FILE" /tmp/stolen
try read-control cat "$CONTROL"
"""


def test_a_job_of_another_company_cannot_read_an_attached_file(
    client: TestClient, center: Center, tenants: Tenants, tmp_path: Path
) -> None:
    setup(client, tenants)
    admin, bob = tenants.acme_admin, tenants.bob
    rid = file_request(client, admin, "acme-vision", {"A100": 10})["id"]
    made = ok(
        client.post(
            f"{REQUESTS}/{rid}/attachments",
            files={"file": ("budget.pdf", SECRET)},
            headers=admin.headers,
        ),
        201,
    )
    path = center.settings.attachments_dir / rid / made["id"]
    # a control: a world-readable file the same probe does read (the probe is not blind)
    control = Path("/tmp") / f"axc-control-{secrets.token_hex(6)}"
    control.write_bytes(b"public")
    control.chmod(0o644)
    attack = submit(
        client,
        bob,
        command=["sh", "-c", PROBES],
        env={
            "FILE": str(path),
            "FOLDER": str(path.parent),
            "ATTACHMENTS": str(center.settings.attachments_dir),
            "CONTROL": str(control),
        },
    )
    try:
        done = wait(client, bob, attack["id"])
    finally:
        control.unlink()
    assert done["state"] == "succeeded", done
    report = log_of(client, bob, attack["id"])
    outcomes = dict(line.split()[::-1] for line in report.splitlines() if " " in line)
    assert outcomes == {
        "read-attachment": "blocked",
        "list-request-folder": "blocked",
        "list-attachments": "blocked",
        "stat-attachment": "blocked",
        "copy-attachment": "blocked",
        "read-control": "OPEN",
    }, report
    assert b"confidential" not in report.encode()
    # the applicant reads it, through the API
    got = client.get(f"{REQUESTS}/{rid}/attachments/{made['id']}", headers=admin.headers)
    assert got.content == SECRET
