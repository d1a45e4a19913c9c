"""Node pools: the center's nodes grouped by the engine that runs them, behind one contract.

A center declares its pools in a configuration file (``axc up --config center.yaml``)::

    pools:
      - name: gpu
        engine: local          # local | slurm | fake
        gpus: H100:8x2         # logical nodes; leave out for the machine's real GPUs
        cpus_per_node: 64
        memory_mb_per_node: 524288
      - name: cluster
        engine: slurm          # nodes, CPUs and memory: from Slurm
        slurm:
          partition: axcenter  # the partition the site gives axcenter
          gpu_type: H100       # axcenter's name of its GPUs (default: Slurm's GRES type)
          slurm_conf: /etc/slurm/slurm.conf
          submit: uid          # uid: root's sbatch --uid/--gid; user: sbatch as the account
          pending_limit_s: 300 # a job Slurm keeps pending longer is requeued in axcenter
          poll_s: 1
          output_dir: /shared/axcenter/logs  # jobs' output, on the nodes' shared file system
          account: ""          # single-user center: the account its jobs run as (never root)
          accounts:            # project -> the Slurm account (grant) its jobs are charged to
            hanbit-adas: kisti-hanbit
      - name: sandbox
        engine: fake
        gpus: A100:4

The same file says how people sign in to the dashboard (``sign_in:``, read by
``service/signin.py``; docs/security.md). The file is validated when ``axc up`` starts,
and every error names its line. Without a file, ``--gpus``/``AXC_LOCAL_GPUS`` is the
shorthand for one local pool. Quotas, fair share, reservations, budgets and the won ledger
know nodes and GPU types, not pools, so they span all pools; a run is handed to the engine
of its batch host's pool, and a gang never spans pools (refused at launch).

``Pools`` is itself an ``Engine``: the control loop sees one engine, whatever the mix.
References are ``POOL/REF``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from axcenter.executors.base import (
    Engine,
    EngineEvent,
    EventCallback,
    LaunchError,
    NodeInventory,
    NodesChanged,
    Recovery,
    RunEnded,
    RunSpec,
    RunStarted,
    StepEnded,
    StepOutput,
    StepSpec,
    StopReason,
)
from axcenter.executors.logs import LogChunk

__all__ = ["CenterConfig", "ConfigError", "PoolConfig", "Pools", "SlurmConfig", "load_config"]

_NAME = r"[a-z][a-z0-9-]{0,30}"


class SlurmConfig(BaseModel):
    """A pool run by Slurm (``executors/slurm``, docs/engines.md)."""

    model_config = ConfigDict(extra="forbid")

    partition: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Slurm partition")
    slurm_conf: str | None = Field(default=None, description="the cluster's slurm.conf")
    bin_dir: str = Field(default="", description="where sbatch & co. are; empty: the PATH")
    submit: Literal["uid", "user"] = "uid"
    gpu_type: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,32}$")
    pending_limit_s: float = Field(default=300.0, gt=0)
    poll_s: float = Field(default=1.0, gt=0, le=60)
    output_dir: str | None = Field(default=None, description="jobs' output (shared with nodes)")
    account: str = Field(default="", description="unix account of jobs with no user's own")
    accounts: dict[str, str] = Field(
        default_factory=dict, description="project -> Slurm account (--account, the grant)"
    )


class PoolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=f"^{_NAME}$", description="the pool's name, e.g. gpu")
    engine: Literal["local", "slurm", "fake"]
    gpus: str | None = Field(
        default=None, description="logical nodes TYPE:GPUS[xNODES],...; none: real GPUs"
    )
    cpus_per_node: int | None = Field(default=None, ge=1)
    memory_mb_per_node: int | None = Field(default=None, ge=1)
    slurm: SlurmConfig | None = None

    @model_validator(mode="after")
    def _engine_options(self) -> PoolConfig:
        if self.engine == "slurm":
            if self.slurm is None:
                raise ValueError("engine slurm needs slurm: (at least its partition)")
            if self.gpus or self.cpus_per_node or self.memory_mb_per_node:
                raise ValueError("a slurm pool's nodes come from Slurm: leave out gpus and sizes")
        elif self.slurm is not None:
            raise ValueError(f"slurm: is for engine slurm, not {self.engine}")
        return self


class CenterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pools: list[PoolConfig] = Field(min_length=1)
    #: how people sign in to the dashboard: validated by ``service.signin``
    sign_in: dict[str, Any] | None = None

    @field_validator("pools")
    @classmethod
    def _unique(cls, pools: list[PoolConfig]) -> list[PoolConfig]:
        seen: set[str] = set()
        for pool in pools:
            if pool.name in seen:
                raise ValueError(f"two pools are named {pool.name!r}")
            seen.add(pool.name)
        return pools


class ConfigError(ValueError):
    """The configuration file is wrong; the message names the file, line and field."""


def load_config(path: Path) -> CenterConfig:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration: {e.strerror}") from e
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from e
    if root is None:
        raise ConfigError(f"{path}: the configuration is empty (it needs pools:)")
    lines: dict[tuple[str | int, ...], int] = {}
    _note_lines(root, (), lines)
    data = yaml.safe_load(text)
    try:
        return CenterConfig.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            line = next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), 1)
            field = ".".join(str(part) for part in loc) or "(top)"
            problems.append(f"{path}:{line}: {field}: {err['msg']}")
        raise ConfigError("\n".join(problems)) from e


def _note_lines(node: yaml.Node, path: tuple[str | int, ...], lines: dict[Any, int]) -> None:
    """Note in ``lines`` the line of each path in a YAML document (for error messages)."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _note_lines(value, (*path, str(key.value)), lines)
            lines[(*path, str(key.value))] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _note_lines(item, (*path, i), lines)


class Pools:
    """Several engines as one (see the module docstring)."""

    def __init__(
        self,
        factories: Mapping[str, Callable[[EventCallback], Engine]],
        on_event: EventCallback,
    ) -> None:
        self._on_event = on_event
        self._lock = threading.Lock()
        self._where: dict[str, str] = {}  # run id -> pool
        self._nodes: dict[str, list[NodeInventory]] = {}
        self._engines: dict[str, Engine] = {}
        for name, factory in factories.items():
            self._engines[name] = factory(self._forward(name))
        owners: dict[str, str] = {}
        for name, engine in self._engines.items():
            self._nodes[name] = engine.inventory()
            for node in self._nodes[name]:
                if node.name in owners:
                    raise ValueError(
                        f"node {node.name} is in pools {owners[node.name]} and {name}:"
                        " node names must be unique across pools"
                    )
                owners[node.name] = name
        self._pool_of = owners

    def _forward(self, pool: str) -> EventCallback:
        def forward(event: EngineEvent) -> None:
            if isinstance(event, NodesChanged):
                with self._lock:
                    self._nodes[pool] = list(event.nodes)
                    self._pool_of.update({n.name: pool for n in event.nodes})
                    nodes = [n for group in self._nodes.values() for n in group]
                self._on_event(NodesChanged(tuple(nodes)))
                return
            with self._lock:
                self._where[event.run_id] = pool
            self._on_event(replace(event, ref=f"{pool}/{event.ref}" if event.ref else ""))

        return forward

    def inventory(self) -> list[NodeInventory]:
        with self._lock:
            return [n for group in self._nodes.values() for n in group]

    def submit(self, run: RunSpec) -> str:
        pools = {self._pool_of.get(node) for node, _ in run.node_devices}
        if None in pools or not pools:
            raise LaunchError(f"job {run.job_id}: placed on a node no pool has")
        if len(pools) > 1:
            raise LaunchError(f"job {run.job_id}: its nodes span pools {sorted(map(str, pools))}")
        pool = str(pools.pop())
        with self._lock:
            self._where[run.run_id] = pool
        return f"{pool}/{self._engines[pool].submit(run)}"

    def stop(self, run_id: str, reason: StopReason, grace_s: float) -> None:
        for engine in self._engines_of(run_id):
            engine.stop(run_id, reason, grace_s)

    def recover(self) -> Recovery:
        running: dict[str, RunStarted] = {}
        ended: list[RunEnded] = []
        queued: set[str] = set()
        for pool, engine in self._engines.items():
            found = engine.recover()
            queued |= found.queued
            for run_id, started in found.running.items():
                running[run_id] = replace(started, ref=f"{pool}/{started.ref}")
            for end in found.ended:
                ended.append(replace(end, ref=f"{pool}/{end.ref}" if end.ref else ""))
            known = [*found.queued, *found.running, *(end.run_id for end in found.ended)]
            with self._lock:  # the engines' threads write it too (``_forward``)
                self._where.update(dict.fromkeys(known, pool))
        return Recovery(running=running, ended=ended, queued=frozenset(queued))

    def acknowledge(self, run_ids: Sequence[str]) -> None:
        by_pool: dict[str, list[str]] = {}
        for run_id in run_ids:
            with self._lock:
                pool = self._where.pop(run_id, None)
            for name in [pool] if pool else list(self._engines):
                by_pool.setdefault(name, []).append(run_id)
        for name, ids in by_pool.items():
            self._engines[name].acknowledge(ids)

    def read_log(self, job_id: str, offset: int, limit: int) -> LogChunk | None:
        for engine in self._engines.values():
            data = engine.read_log(job_id, offset, limit)
            if data is not None:
                return data
        return None

    def run_step(self, step: StepSpec, output: StepOutput, cancel: threading.Event) -> StepEnded:
        """On the engine of the run's pool (the pool of its nodes)."""
        pools = {self._pool_of.get(node) for node, _ in step.run.node_devices}
        pool = pools.pop() if len(pools) == 1 else None
        if pool is None:
            raise LaunchError(f"job {step.run.job_id}: its nodes are in no one pool")
        return self._engines[pool].run_step(step, output, cancel)

    def close(self, *, stop_runs: bool = False, grace_s: float | None = None) -> None:
        for engine in self._engines.values():
            engine.close(stop_runs=stop_runs, grace_s=grace_s)

    def stages(self, node: str) -> bool:
        with self._lock:
            pool = self._pool_of.get(node)
        return pool is not None and self._engines[pool].stages(node)

    def _engines_of(self, run_id: str) -> list[Engine]:
        with self._lock:
            pool = self._where.get(run_id)
        return [self._engines[pool]] if pool else list(self._engines.values())
