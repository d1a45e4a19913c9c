"""A job stopped and requeued (``axc up --stop-jobs`` stops and requeues what runs) and
run again keeps the log of every attempt: the second run appends, nothing is cut."""

from __future__ import annotations

from tests.e2e.conftest import Service, wait_for

PROJECT = "hanbit-adas"  # from the demo data


def test_a_requeued_jobs_log_keeps_every_attempt(service: Service) -> None:
    service.stop()
    service.env["AXC_STOP_JOBS_ON_SHUTDOWN"] = "true"
    service.start()
    script = 'echo "run $AXC_RUN_ID"; sleep 30'
    with service.api() as api:
        job = api.post(
            "/jobs", json={"project": PROJECT, "command": ["sh", "-c", script], "gpus_per_node": 1}
        ).json()
    first = f"run {job['id']}.1"
    wait_for(lambda: first in service.axc("logs", job["id"]).stdout or None)
    service.stop()  # SIGTERM, with stop-jobs: the job is stopped and requeued
    service.env["AXC_STOP_JOBS_ON_SHUTDOWN"] = "false"
    service.start()
    second = f"run {job['id']}.2"

    def log_with_second() -> str | None:
        out = service.axc("logs", job["id"]).stdout
        return out if second in out else None

    log = wait_for(log_with_second, timeout=60)
    assert log.index(first) < log.index(second), log
    service.axc("cancel", job["id"], check=True)
