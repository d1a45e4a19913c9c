"""A project's job templates (issue 21 point 6): kept, listed, used and deleted through
the API, the CLI and the dashboard (whose submit form takes a multi-line script and saves
it as a template); a real job runs from one; other companies neither see nor use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from axcenter.cli import main as cli_main
from axcenter.client.http import Client
from axcenter.service.center import Center
from tests.api.conftest import Account, Tenants
from tests.api.test_jobs import wait
from tests.api.test_programs import API, make_staff, ok
from tests.cli import HttpxTransport
from tests.web.test_pages import browser, csrf_for

SCRIPT = 'echo "step one"\nfor i in 1 2; do echo "line $i"; done\n'
URL = f"{API}/projects/acme-vision/templates"


def keep(client: TestClient, who: Account, name: str = "train", **job: Any) -> Any:
    job = {
        "command": ["bash", "-euo", "pipefail", "-c", SCRIPT],
        "gpus_per_node": 0,
        "time_limit_s": 600,
    } | job
    return client.post(
        URL, json={"name": name, "description": "nightly", "job": job}, headers=who.headers
    )


def test_templates_kept_used_and_confined_to_their_project(
    client: TestClient, tenants: Tenants
) -> None:
    alice, bob, admin = tenants.alice, tenants.bob, tenants.acme_admin
    made = ok(keep(client, alice), 201)
    assert made["job"]["command"][-1] == SCRIPT and made["created_by"] == "alice"
    assert "project" not in made["job"]
    assert keep(client, alice).status_code == 409  # one name per project
    bad = keep(client, alice, name="no spaces")
    assert bad.status_code == 422 and "name" in bad.text
    elsewhere = keep(client, alice, name="x", project="bolt-llm")
    assert elsewhere.status_code == 422 and "job.project" in elsewhere.text
    held = keep(client, alice, name="y", held=True)
    assert held.status_code == 422 and "job.held" in held.text
    listed = ok(client.get(URL, headers=admin.headers))["items"]
    assert [t["name"] for t in listed] == ["train"]
    # another company does not know the project's templates; it cannot keep one there
    assert client.get(URL, headers=bob.headers).status_code == 404
    assert client.get(f"{URL}/train", headers=bob.headers).status_code == 404
    assert keep(client, bob, name="z").status_code == 404
    assert client.post(f"{URL}/train/jobs", headers=bob.headers).status_code == 404

    # using it submits its job, which runs the script
    job = ok(
        client.post(f"{URL}/train/jobs", json={"name": "nightly-1"}, headers=alice.headers), 201
    )
    assert job["name"] == "nightly-1" and job["project"] == "acme-vision"
    assert job["time_limit_s"] == 600
    done = wait(client, alice, job["id"])
    assert done["state"] == "succeeded", done
    log = client.get(f"{API}/jobs/{job['id']}/log", headers=alice.headers).text
    assert log == "step one\nline 1\nline 2\n"
    too_long = client.post(f"{URL}/train/jobs", json={"time_limit_s": 0}, headers=alice.headers)
    assert too_long.status_code == 422

    assert client.delete(f"{URL}/train", headers=bob.headers).status_code == 404
    assert client.delete(f"{URL}/train", headers=alice.headers).status_code == 204
    assert client.get(f"{URL}/train", headers=alice.headers).status_code == 404


def test_reviewers_see_no_templates_and_program_managers_only_read(
    client: TestClient, tenants: Tenants
) -> None:
    staff = make_staff(client, tenants)
    ok(keep(client, tenants.alice), 201)
    assert client.get(URL, headers=staff.reviewer.headers).status_code == 404
    assert ok(client.get(URL, headers=staff.pm.headers))["items"][0]["name"] == "train"
    refused = keep(client, staff.pm, name="pm")
    assert refused.status_code == 403 and "job templates" in refused.text


def test_templates_on_the_dashboard(client: TestClient, center: Center, tenants: Tenants) -> None:
    alice = tenants.alice
    web = browser(center, alice.token, lang="ko")
    form = web.get("/ui/jobs/new").text
    assert "템플릿으로 저장" in form and 'rows="8"' in form
    fields = {
        "csrf": csrf_for(alice.token),
        "project": "acme-vision",
        "command": "echo one\r\necho two",
        "gpus_per_node": "0",
        "nodes": "1",
        "time_limit_min": "5",
        "save_as": "1",
    }
    bad = web.post("/ui/jobs/new", data=fields | {"template": "두 단어"})
    assert bad.status_code == 400 and "템플릿 이름으로 쓸 수 없습니다" in bad.text
    saved = web.post("/ui/jobs/new", data=fields | {"template": "two-lines"})
    assert saved.status_code == 303 and saved.headers["location"].endswith("#templates")
    kept = ok(client.get(f"{URL}/two-lines", headers=alice.headers))
    assert kept["job"]["command"][-1] == "echo one\necho two\n"
    assert kept["job"]["time_limit_s"] == 300
    project = web.get("/ui/projects/acme-vision").text
    assert "작업 템플릿" in project and "two-lines" in project
    assert "/ui/jobs/new?project=acme-vision&amp;template=two-lines" in project
    filled = web.get("/ui/jobs/new", params={"project": "acme-vision", "template": "two-lines"})
    assert filled.status_code == 200
    assert ">echo one\necho two</textarea>" in filled.text
    assert 'value="5"' in filled.text  # the time limit, in minutes
    # another company's member: the template is not found, in their language
    other = browser(center, tenants.bob.token, lang="ko")
    missing = other.get("/ui/jobs/new", params={"project": "acme-vision", "template": "two-lines"})
    assert missing.status_code == 404 and 'href="/ui/jobs"' in missing.text
    gone = web.post(
        "/ui/projects/acme-vision/templates/two-lines/delete", data={"csrf": csrf_for(alice.token)}
    )
    assert gone.status_code == 303
    assert "저장된 템플릿이 없습니다" in web.get("/ui/projects/acme-vision").text


def test_templates_from_the_cli(
    client: TestClient, tenants: Tenants, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = HttpxTransport(client._transport)
    monkeypatch.setattr(
        cli_main, "client_factory", lambda cfg: Client(cfg.url, cfg.token, transport=transport)
    )
    runner = CliRunner()

    def axc(who: Account, *args: str) -> Any:
        env = {"AXC_URL": "http://testserver", "AXC_TOKEN": who.token, "COLUMNS": "200"}
        return runner.invoke(cli_main.app, list(args), env=env)

    alice = tenants.alice
    script = tmp_path / "train.sh"
    script.write_text(SCRIPT)
    made = axc(
        alice,
        "template",
        "create",
        "acme-vision",
        "train",
        "--script",
        str(script),
        "--gpus",
        "0",
        "--time",
        "10m",
    )
    assert made.exit_code == 0, made.output
    assert "template train kept in acme-vision" in made.output
    one = axc(
        alice, "template", "create", "acme-vision", "hello", "--gpus", "0", "--", "echo", "hi"
    )
    assert one.exit_code == 0, one.output
    both = axc(
        alice, "template", "create", "acme-vision", "bad", "--script", str(script), "--", "x"
    )
    assert both.exit_code != 0 and "not both" in both.output
    listed = axc(alice, "template", "list", "acme-vision")
    assert listed.exit_code == 0 and "train" in listed.output and "echo hi" in listed.output
    assert "10m" in listed.output or "00:10:00" in listed.output
    shown = axc(alice, "template", "show", "acme-vision", "train")
    assert 'for i in 1 2; do echo "line $i"; done' in shown.output
    used = axc(alice, "template", "use", "acme-vision", "hello", "-J", "from-cli")
    assert used.exit_code == 0, used.output
    job_id = used.output.strip()
    assert job_id.startswith("job_")
    assert wait(client, alice, job_id)["name"] == "from-cli"
    hidden = axc(tenants.bob, "template", "list", "acme-vision")
    assert hidden.exit_code != 0 and "no project" in hidden.output
    deleted = axc(alice, "template", "delete", "acme-vision", "hello")
    assert deleted.exit_code == 0
