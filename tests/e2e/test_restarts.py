"""kill -9 of ``axc up`` while jobs start, run and end, twice, then restart: every job ran
exactly once (adopted, or recorded with the exit it really had while nobody listened),
and each was charged exactly for the time the engine says it ran. Both stores."""

from __future__ import annotations

import signal
from datetime import datetime
from pathlib import Path

from axcenter.model.money import gpu_seconds
from tests.e2e.conftest import Service, supervisors, wait_for

PROJECT = "hanbit-adas"  # from the demo data
JOBS = 40


def test_kill_9_under_load_runs_every_job_once_and_charges_it_exactly(
    service: Service, exchange: Path
) -> None:
    marks = exchange
    script = (
        f'echo "$AXC_RUN_ID" >> {marks}/"$AXC_JOB_ID"; sleep 0.$((3 + $$ % 6)); exit $(($$ % 3))'
    )
    with service.api() as api:
        ids = [
            api.post(
                "/jobs",
                json={"project": PROJECT, "command": ["sh", "-c", script], "gpus_per_node": 1},
            ).json()["id"]
            for _ in range(JOBS)
        ]
    for kill_after in (6, 14):  # starts recorded so far, before each kill
        wait_for(lambda n=kill_after: len(list(marks.iterdir())) >= n or None, timeout=60)
        service.stop(signal.SIGKILL)
        # what was running goes on and ends while nobody listens
        wait_for(lambda: not supervisors(service.data_dir) or None, timeout=30)
        service.start()

    with service.api() as api:
        jobs = {}
        for job_id in ids:
            for _ in range(100):
                job = api.get(f"/jobs/{job_id}/wait", params={"timeout": 5}).json()
                if job["ended_at"] is not None:
                    break
            jobs[job_id] = job
        for job_id, job in jobs.items():
            runs = _lines(marks / job_id)
            assert len(runs) == 1, f"{job_id} ran {runs}"  # never twice, never lost
            assert runs == [f"{job_id}.{job['attempts']}"]
            assert job["state"] in {"succeeded", "failed"}, job
            assert job["exit_code"] in {0, 1, 2}
            charges = api.get(f"/jobs/{job_id}/charges").json()
            assert charges["held_won"] == 0
            charged = [c for c in charges["items"] if c["kind"] == "charge"]
            ran = _ts(job["ended_at"]) - _ts(job["started_at"])
            assert [c["gpu_seconds"] for c in charged] == [gpu_seconds(1, ran)], job_id


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()
