"""Node pools: the configuration file (validated, errors with their line) and one center
whose pools run on different engines behind the one contract."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from axcenter.api.app import create_app
from axcenter.executors.base import EngineEvent, NodeInventory, RunEnded, RunSpec, RunStarted
from axcenter.executors.fake import FakeEngine
from axcenter.executors.pools import ConfigError, Pools, load_config
from axcenter.service.bootstrap import ensure_operator, load_demo
from axcenter.service.center import Center
from axcenter.settings import Settings


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "center.yaml"
    path.write_text(text)
    return path


def test_a_valid_configuration(tmp_path: Path) -> None:
    found = load_config(
        config(
            tmp_path,
            "pools:\n"
            "  - name: gpu\n    engine: local\n    gpus: H100:8x2\n"
            "  - name: sandbox\n    engine: fake\n    gpus: A100:4\n    cpus_per_node: 16\n",
        )
    )
    assert [(p.name, p.engine, p.gpus) for p in found.pools] == [
        ("gpu", "local", "H100:8x2"),
        ("sandbox", "fake", "A100:4"),
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("pools:\n  - name: gpu\n    engine: slurmm\n", ":3: pools.0.engine: Input should be"),
        (
            "pools:\n  - name: gpu\n    engine: local\n    gpu: H100:8\n",
            ":4: pools.0.gpu: Extra inputs are not permitted",
        ),
        (
            "pools:\n  - name: a\n    engine: local\n  - name: a\n    engine: fake\n",
            ":1: pools: Value error, two pools are named 'a'",
        ),
        ("pools: [\n", ":2: not valid YAML"),
        ("", ": the configuration is empty"),
        (
            "pools:\n  - name: Big Pool\n    engine: local\n",
            ":2: pools.0.name: String should match",
        ),
    ],
)
def test_errors_name_the_line_and_the_field(tmp_path: Path, text: str, error: str) -> None:
    path = config(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).startswith(str(path))
    assert error in str(raised.value)


def test_pools_route_runs_to_the_engine_of_their_nodes() -> None:
    events: queue.Queue[EngineEvent] = queue.Queue()
    engines: dict[str, FakeEngine] = {}

    def fake(name: str, node: str) -> Any:
        def make(on_event: Any) -> FakeEngine:
            engines[name] = FakeEngine([NodeInventory(node, "H100", 4, 8, 1, True)], on_event)
            return engines[name]

        return make

    pools = Pools({"a": fake("a", "a-0"), "b": fake("b", "b-0")}, events.put)
    assert [n.name for n in pools.inventory()] == ["a-0", "b-0"]
    run = RunSpec("j", 1, ("x",), "/tmp", {}, (("b-0", (0,)),), 60)
    ref = pools.submit(run)
    assert ref.startswith("b/") and "j.1" in engines["b"].runs and not engines["a"].runs
    started = events.get_nowait()
    assert isinstance(started, RunStarted) and started.ref == ref
    engines["b"].end("j.1", 0)
    assert isinstance(ended := events.get_nowait(), RunEnded) and ended.ref == ref
    assert [e.run_id for e in pools.recover().ended] == ["j.1"]
    pools.acknowledge(["j.1"])
    assert engines["b"].runs["j.1"].acknowledged
    with pytest.raises(Exception, match="span pools"):
        pools.submit(RunSpec("k", 1, ("x",), "/tmp", {}, (("a-0", (0,)), ("b-0", (0,))), 60))


def test_duplicate_node_names_across_pools_are_refused() -> None:
    def make(on_event: Any) -> FakeEngine:
        return FakeEngine([NodeInventory("n-0", "H100", 4, 8, 1, True)], on_event)

    with pytest.raises(ValueError, match="node n-0 is in pools a and b"):
        Pools({"a": make, "b": make}, lambda e: None)


@pytest.fixture
def mixed(tmp_path: Path) -> Iterator[TestClient]:
    """A center whose H100 pool runs jobs for real and whose A100 pool is a fake engine."""
    path = config(
        tmp_path,
        "pools:\n"
        "  - name: real\n    engine: local\n    gpus: H100:2\n"
        "  - name: sandbox\n    engine: fake\n    gpus: A100:2\n",
    )
    settings = Settings(
        data_dir=tmp_path / "data",
        config=path,
        stop_jobs_on_shutdown=True,
        kill_grace_s=1.0,
    )
    center = Center(settings)
    center.start()

    ensure_operator(center.store)
    token = next(c.token for c in load_demo(center.store) if c.organization == "Hanbit Motors")
    center.control.policy_changed()
    with TestClient(create_app(center)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client
    center.stop()


def test_one_center_mixes_engines(mixed: TestClient) -> None:
    nodes = {n["name"]: n["gpu_type"] for n in mixed.get("/api/v1/cluster").json()["nodes"]}
    assert nodes == {"real-0": "H100", "sandbox-0": "A100"}
    ids = {}
    for gpu_type in ("H100", "A100"):
        body = {"project": "hanbit-adas", "command": ["true"], "gpu_types": [gpu_type]}
        r = mixed.post("/api/v1/jobs", json=body)
        assert r.status_code == 201, r.text
        ids[gpu_type] = r.json()["id"]
    real = wait_job(mixed, ids["H100"], "succeeded")
    assert real["placement"][0]["node"] == "real-0"
    fake = wait_job(mixed, ids["A100"], "running")  # the fake engine starts it, never ends it
    assert fake["placement"][0]["node"] == "sandbox-0"


def wait_job(client: TestClient, job_id: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] == state:
            return job
        time.sleep(0.02)
    raise AssertionError(f"{job_id} never {state}: {job}")
