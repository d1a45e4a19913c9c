"""The live path against a real ``axc up``: acknowledged means committed, exits drive cycles."""

from __future__ import annotations

import signal
import threading
from typing import Any

import httpx

from tests.e2e.conftest import Service, wait_for

PROJECT = "hanbit-adas"  # from the demo data


def hold_every_gpu(api: httpx.Client) -> list[str]:
    """The demo's four GPUs (A100:2, H100:2) taken by sleepers: what follows waits."""
    ids = []
    for gpu_type in ("A100", "H100"):
        body = {
            "project": PROJECT,
            "command": ["sleep", "600"],
            "gpus_per_node": 2,
            "gpu_types": [gpu_type],
        }
        ids.append(api.post("/jobs", json=body).json()["id"])
    for job_id in ids:
        wait_for(lambda j=job_id: api.get(f"/jobs/{j}").json()["state"] == "running" or None)
    return ids


def test_every_acknowledged_submission_of_a_burst_survives_kill_9(service: Service) -> None:
    """Eight clients submit at once (the group commit batches them); the service is killed
    with SIGKILL while requests are in flight. Every job that was answered 201 is there
    after the restart; requests cut off may or may not be, but none is half-written."""
    service.stop()  # one user submits as fast as 8 clients can: no rate limit here
    service.env["AXC_MAX_SUBMISSIONS_PER_S_PER_USER"] = "1e9"
    service.env["AXC_MAX_SUBMISSIONS_PER_S_PER_PROJECT"] = "1e9"
    service.start()
    with service.api() as api:
        holders = hold_every_gpu(api)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with service.api() as api:
            i = 0
            while not stop.is_set():
                body = {
                    "project": PROJECT,
                    "name": f"burst-{n}-{i}",
                    "command": ["true"],
                    "gpus_per_node": 1,
                }
                try:
                    r = api.post("/jobs", json=body)
                except httpx.TransportError:
                    return  # the service is gone
                if r.status_code != 201:
                    return
                with lock:
                    acknowledged.append(r.json()["id"])
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acknowledged) >= 200 or None)
    service.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    answered = list(acknowledged)
    assert len(answered) >= 200

    service.start()
    with service.api() as api:
        found: dict[str, Any] = {}
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000}  # any state: some have run since
            if cursor:
                params["cursor"] = cursor
            page = api.get("/jobs", params=params).json()
            found.update({j["id"]: j for j in page["items"]})
            cursor = page["next_cursor"]
            if not cursor:
                break
        missing = [j for j in answered if j not in found]
        assert not missing, f"{len(missing)} acknowledged jobs lost, e.g. {missing[:3]}"
        # nothing half-written: each job found is whole, with its first event
        sample = api.get(f"/jobs/{answered[-1]}").json()
        assert sample["command"] == ["true"] and sample["events"][0]["to_state"] == "pending"
        for job_id in holders:
            api.post(f"/jobs/{job_id}/cancel")


def test_an_exit_starts_the_next_job_without_the_timer(service: Service) -> None:
    """With the safety-net timer set to an hour, a queued job still starts as soon as
    the job ahead of it exits: the exit itself runs the cycle."""
    service.stop()
    service.env["AXC_SAFETY_CYCLE_S"] = "3600"
    service.start()
    with service.api() as api:
        holders = hold_every_gpu(api)
        queued = api.post(
            "/jobs", json={"project": PROJECT, "command": ["true"], "gpus_per_node": 2}
        ).json()["id"]
        assert api.get(f"/jobs/{queued}").json()["state"] == "pending"
        api.post(f"/jobs/{holders[0]}/cancel")
        done = wait_for(
            lambda: ((j := api.get(f"/jobs/{queued}").json())["state"] == "succeeded" and j) or None
        )
        ended = api.get(f"/jobs/{holders[0]}").json()["ended_at"]
        assert done["started_at"] >= ended
        api.post(f"/jobs/{holders[1]}/cancel")
