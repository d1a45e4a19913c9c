"""Request and response bodies of the API (pydantic), shared by the API and its tests.

``*In`` models are what callers send (validated strictly, unknown fields refused);
``*Out`` models are what the API answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "ClusterOut",
    "DeviceOut",
    "EventOut",
    "JobBatchIn",
    "JobIn",
    "JobListOut",
    "JobOut",
    "NodeOut",
    "PlacementOut",
    "ProjectListOut",
    "ProjectOut",
    "SummaryOut",
    "WhoAmIOut",
]

Arg = Annotated[str, StringConstraints(max_length=4096)]
EnvKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
EnvValue = Annotated[str, StringConstraints(max_length=4096)]
GpuType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    command: Annotated[list[Arg], Field(min_length=1, max_length=1000)]
    workdir: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    env: Annotated[dict[EnvKey, EnvValue], Field(max_length=200)] = {}
    gpus_per_node: Annotated[int, Field(ge=0, le=64)] = 1
    nodes: Annotated[int, Field(ge=1, le=1024)] = 1
    cpus_per_node: Annotated[int, Field(ge=1, le=4096)] | None = None
    memory_mb_per_node: Annotated[int, Field(ge=1, le=64 * 1024 * 1024)] | None = None
    time_limit_s: Annotated[int, Field(ge=1)] | None = None
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    gpu_types: Annotated[list[GpuType], Field(max_length=16)] = []
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class JobBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: Annotated[list[JobIn], Field(min_length=1, max_length=10_000)]


class PlacementOut(BaseModel):
    node: str
    devices: list[int]


class EventOut(BaseModel):
    at: datetime
    from_state: str | None
    to_state: str
    reason: str


class JobOut(BaseModel):
    id: str
    name: str
    project: str
    project_id: str
    user: str
    state: str
    reason: str | None
    command: list[str]
    workdir: str
    env: dict[str, str]
    gpus_per_node: int
    nodes: int
    cpus_per_node: int
    memory_mb_per_node: int
    time_limit_s: int
    priority: int
    gpu_types: list[str]
    gpu_type: str | None
    placement: list[PlacementOut]
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None
    attempts: int
    idempotency_key: str | None
    events: list[EventOut] | None = None


class JobListOut(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class ProjectOut(BaseModel):
    id: str
    name: str
    organization: str
    sector: str


class ProjectListOut(BaseModel):
    items: list[ProjectOut]


class WhoAmIOut(BaseModel):
    id: str
    name: str
    organization_id: str
    organization: str
    role: str


class DeviceOut(BaseModel):
    index: int
    busy: bool
    job_id: str | None
    user: str | None
    project: str | None


class NodeOut(BaseModel):
    id: str
    name: str
    gpu_type: str
    gpu_count: int
    logical: bool
    state: str
    cpus: int
    memory_mb: int
    devices: list[DeviceOut]


class SummaryOut(BaseModel):
    gpus: int
    gpus_used: int
    pending_jobs: int
    running_jobs: int


class ClusterOut(BaseModel):
    nodes: list[NodeOut]
    summary: SummaryOut
