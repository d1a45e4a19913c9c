"""Files attached to allocation requests (issue 21 point 5): upload through the API, the
CLI and the dashboard, the limits on size, type and count with clear refusals and nothing
half-written, files kept 0600 under the data directory, read only by those who may read
the request (review confidentiality: reviewers assigned to it, staff, the applicant's
admin; not a member of the company, not another company, not another reviewer).
"""

from __future__ import annotations

import html
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from axcenter.cli import main as cli_main
from axcenter.client.http import Client
from axcenter.service.attachments import MAX_PER_REQUEST
from axcenter.service.center import Center
from axcenter.store import orm
from tests.api.conftest import Account, Tenants
from tests.api.test_allocations import REQUESTS, file_request, setup, step
from tests.api.test_programs import ok
from tests.cli import HttpxTransport
from tests.web.test_pages import browser, csrf_for

PDF = b"%PDF-1.7\n" + "제안서 본문".encode() + b"\n%%EOF\n"
XLSX = b"PK\x03\x04" + b"\x00" * 64


def upload(client: TestClient, who: Account, rid: str, name: str, content: bytes) -> Any:
    return client.post(
        f"{REQUESTS}/{rid}/attachments", files={"file": (name, content)}, headers=who.headers
    )


def stored(center: Center, rid: str) -> list[str]:
    folder = center.settings.attachments_dir / rid
    return sorted(os.listdir(folder)) if folder.exists() else []


def rows(center: Center) -> int:
    with center.store.read() as s:
        return int(s.scalar(select(func.count()).select_from(orm.RequestAttachment)) or 0)


def test_attach_read_and_remove_with_review_confidentiality(
    client: TestClient, center: Center, tenants: Tenants
) -> None:
    staff = setup(client, tenants)
    admin, alice, bob = tenants.acme_admin, tenants.alice, tenants.bob
    rid = file_request(client, admin, "acme-vision", {"A100": 100})["id"]
    made = ok(upload(client, admin, rid, "../../제안서 2026.pdf", PDF), 201)
    assert made["filename"] == "제안서 2026.pdf"  # the name, never a path
    assert made["content_type"] == "application/pdf" and made["size_bytes"] == len(PDF)
    ok(upload(client, admin, rid, "budget.xlsx", XLSX), 201)
    seen = ok(client.get(f"{REQUESTS}/{rid}", headers=admin.headers))
    assert [a["filename"] for a in seen["attachments"]] == ["제안서 2026.pdf", "budget.xlsx"]
    assert [e["action"] for e in seen["events"]][-2:] == ["attached", "attached"]
    assert "attach" in seen["actions"]

    # stored under the data directory, the service's alone, by id, not by the given name
    folder = center.settings.attachments_dir / rid
    path = folder / made["id"]
    assert path.read_bytes() == PDF
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(center.settings.attachments_dir.stat().st_mode) == 0o700

    url = f"{REQUESTS}/{rid}/attachments/{made['id']}"
    got = client.get(url, headers=admin.headers)
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert client.get(url, headers=staff.pm.headers).status_code == 200
    # a member of the company reads no request (403), another company does not know it (404)
    assert client.get(url, headers=alice.headers).status_code == 403
    assert client.get(url, headers=bob.headers).status_code == 404
    assert upload(client, bob, rid, "x.pdf", PDF).status_code == 404
    assert upload(client, alice, rid, "x.pdf", PDF).status_code == 403
    # reviewers: only those assigned to it; an attachment of another request is not found
    assert client.get(url, headers=staff.reviewer.headers).status_code == 404
    ok(step(client, staff.pm, rid, "assign", reviewers=["rev"]))
    assert client.get(url, headers=staff.reviewer.headers).content == PDF
    assert client.get(url, headers=staff.reviewer2.headers).status_code == 404
    other = file_request(client, admin, "acme-vision", {"A100": 5})["id"]
    assert (
        client.get(
            f"{REQUESTS}/{other}/attachments/{made['id']}", headers=admin.headers
        ).status_code
        == 404
    )

    # in review, the files are what reviewers judge: nothing added or removed
    refused = upload(client, admin, rid, "late.pdf", PDF)
    assert refused.status_code == 409 and "in_review" in refused.text
    assert client.delete(url, headers=admin.headers).status_code == 409
    # returned for changes: the applicant completes the file
    ok(step(client, staff.pm, rid, "return", comment="add the budget in PDF"))
    assert client.delete(url, headers=alice.headers).status_code == 403
    assert client.delete(url, headers=admin.headers).status_code == 204
    assert not path.exists() and client.get(url, headers=admin.headers).status_code == 404
    after = ok(client.get(f"{REQUESTS}/{rid}", headers=admin.headers))
    assert [a["filename"] for a in after["attachments"]] == ["budget.xlsx"]
    assert after["events"][-1]["action"] == "detached"
    assert after["events"][-1]["comment"] == "제안서 2026.pdf"


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("tool.exe", b"MZ\x90\x00", "files of this type are not accepted (accepted: csv, docx"),
        ("proposal.pdf", b"<html><script>alert(1)</script>", "is not a application/pdf file"),
        ("budget.xlsx", b"%PDF-1.7", "is not a application/vnd.openxml"),
        ("notes.txt", b"\x00\x01binary", "is not text"),
        ("empty.pdf", b"", "empty.pdf is empty"),
        ("noext", b"%PDF-1.7", "noext: files of this type are not accepted"),
    ],
)
def test_refused_files_say_why_and_leave_nothing(
    client: TestClient, center: Center, tenants: Tenants, name: str, content: bytes, said: str
) -> None:
    setup(client, tenants)
    rid = file_request(client, tenants.acme_admin, "acme-vision", {"A100": 1})["id"]
    refused = upload(client, tenants.acme_admin, rid, name, content)
    assert refused.status_code == 422 and said in refused.json()["detail"], refused.text
    assert refused.json()["detail"].startswith("file: ")
    assert stored(center, rid) == [] and rows(center) == 0


def test_size_and_count_limits(client: TestClient, center: Center, tenants: Tenants) -> None:
    setup(client, tenants)
    admin = tenants.acme_admin
    rid = file_request(client, admin, "acme-vision", {"A100": 1})["id"]
    limit = center.settings.attachment_max_bytes
    too_big = upload(client, admin, rid, "big.pdf", b"%PDF-" + b"x" * (limit - 4))
    assert too_big.status_code == 422
    assert "big.pdf is larger than the 10 MiB a file may be" in too_big.text
    assert stored(center, rid) == [] and rows(center) == 0
    ok(upload(client, admin, rid, "exact.pdf", b"%PDF-" + b"x" * (limit - 5)), 201)
    for n in range(MAX_PER_REQUEST - 1):
        ok(upload(client, admin, rid, f"part{n}.csv", "기관,금액\nAcme,100\n".encode()), 201)
    full = upload(client, admin, rid, "one-more.csv", b"a,b\n")
    assert full.status_code == 409 and f"has {MAX_PER_REQUEST} files already" in full.text
    assert len(stored(center, rid)) == MAX_PER_REQUEST


def test_attachments_on_the_dashboard(client: TestClient, center: Center, tenants: Tenants) -> None:
    setup(client, tenants)
    admin = tenants.acme_admin
    rid = file_request(client, admin, "acme-vision", {"A100": 1})["id"]
    web = browser(center, admin.token, lang="ko")
    form = web.get(f"/ui/requests/{rid}").text
    assert 'enctype="multipart/form-data"' in form and "첨부된 파일이 없습니다" in form
    assert "파일당 최대 10 MiB" in form
    done = web.post(
        f"/ui/requests/{rid}/attachments",
        data={"csrf": csrf_for(admin.token)},
        files={"file": ("계획서.pdf", PDF)},
    )
    assert done.status_code == 303, done.text
    page = web.get(f"/ui/requests/{rid}").text
    [att] = ok(client.get(f"{REQUESTS}/{rid}", headers=admin.headers))["attachments"]
    assert "계획서.pdf" in page and f"/ui/requests/{rid}/attachments/{att['id']}" in page
    assert "파일 첨부" in page  # the history's step, in Korean
    assert web.get(f"/ui/requests/{rid}/attachments/{att['id']}").content == PDF
    # a bad file: the error page in the reader's language, the navigation kept
    bad = web.post(
        f"/ui/requests/{rid}/attachments",
        data={"csrf": csrf_for(admin.token)},
        files={"file": ("run.sh", b"#!/bin/sh")},
    )
    assert bad.status_code == 422 and "입력값을 확인해 주세요" in bad.text
    said = html.unescape(bad.text)  # the service's refusal, in Korean too
    assert "파일 첨부: run.sh: 이 형식의 파일은 받지 않습니다 (허용 형식: " in said
    assert 'href="/ui/jobs"' in bad.text
    # without the form's CSRF value nothing is attached
    forged = web.post(f"/ui/requests/{rid}/attachments", files={"file": ("x.pdf", PDF)})
    assert forged.status_code == 403 and rows(center) == 1
    # another company's admin: the page, the file and the upload are not found
    other = browser(center, tenants.bob.token)
    assert other.get(f"/ui/requests/{rid}/attachments/{att['id']}").status_code == 404
    removed = web.post(
        f"/ui/requests/{rid}/attachments/{att['id']}/delete", data={"csrf": csrf_for(admin.token)}
    )
    assert removed.status_code == 303 and rows(center) == 0


def test_attachments_from_the_cli(
    client: TestClient,
    center: Center,
    tenants: Tenants,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup(client, tenants)
    transport = HttpxTransport(client._transport)
    monkeypatch.setattr(
        cli_main, "client_factory", lambda cfg: Client(cfg.url, cfg.token, transport=transport)
    )
    runner = CliRunner()

    def axc(who: Account, *args: str) -> Any:
        env = {"AXC_URL": "http://testserver", "AXC_TOKEN": who.token, "COLUMNS": "220"}
        return runner.invoke(cli_main.app, list(args), env=env)

    admin = tenants.acme_admin
    rid = file_request(client, admin, "acme-vision", {"A100": 1})["id"]
    proposal = tmp_path / "proposal.pdf"
    proposal.write_bytes(PDF)
    sheet = tmp_path / "budget.exe"
    sheet.write_bytes(b"MZ")
    done = axc(admin, "alloc", "attach", rid, str(proposal))
    assert done.exit_code == 0, done.output
    assert "attached proposal.pdf as att_" in done.output
    bad = axc(admin, "alloc", "attach", rid, str(sheet))
    assert bad.exit_code != 0 and "not accepted" in bad.output
    shown = axc(admin, "alloc", "show", rid)
    att = shown.output.split("att_")[1].split()[0]
    assert f"proposal.pdf ({len(PDF):,} bytes)" in shown.output
    out = tmp_path / "copy.pdf"
    got = axc(admin, "alloc", "attachment", rid, f"att_{att}", "-o", str(out))
    assert got.exit_code == 0, got.output
    assert out.read_bytes() == PDF
    denied = axc(tenants.bob, "alloc", "attachment", rid, f"att_{att}")
    assert denied.exit_code != 0 and "no request" in denied.output
    gone = axc(admin, "alloc", "detach", rid, f"att_{att}")
    assert gone.exit_code == 0 and rows(center) == 0
