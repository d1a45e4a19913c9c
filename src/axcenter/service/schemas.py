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
    "CohortIn",
    "CohortListOut",
    "CohortOut",
    "CohortParentIn",
    "DeviceOut",
    "EventOut",
    "JobBatchIn",
    "JobIn",
    "JobListOut",
    "JobOut",
    "NodeOut",
    "PlacementOut",
    "ProjectCohortIn",
    "ProjectLimitsIn",
    "ProjectListOut",
    "ProjectOut",
    "ProjectPolicyOut",
    "QuotaIn",
    "QuotaListOut",
    "QuotaOut",
    "ReservationIn",
    "ReservationListOut",
    "ReservationNodeIn",
    "ReservationNodeOut",
    "ReservationOut",
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
    borrowed: bool = False  # runs beyond its project's nominal quota: may be preempted
    estimated_start: datetime | None = None  # the backfill reservation of a waiting job
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


# -- scheduling policy (operators): quotas, cohorts, project limits, reservations ---------

#: names of cohorts and reservations: they appear in URLs, so no slashes or spaces
PolicyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
ProjectRef = Annotated[str, StringConstraints(min_length=1, max_length=100)]
#: GPUs in a quota; far above any center, low enough to refuse typos like 1e9
QuotaGpus = Annotated[int, Field(ge=0, le=100_000)]
#: the project limits that ``ProjectLimitsIn.clear`` may remove
ClearableLimit = Annotated[str, StringConstraints(pattern=r"^(max_running_jobs|max_gpus)$")]


class QuotaIn(BaseModel):
    """A project's quota of one GPU type; ``None`` limits mean "no limit"."""

    model_config = ConfigDict(extra="forbid")

    nominal: QuotaGpus
    borrowing_limit: QuotaGpus | None = None
    lending_limit: QuotaGpus | None = None


class QuotaOut(BaseModel):
    project: str
    project_id: str
    gpu_type: str
    nominal: int
    borrowing_limit: int | None
    lending_limit: int | None
    #: GPUs of this type held now by the project's running jobs
    in_use: int
    #: in_use above nominal: the excess is borrowed and may be reclaimed by preemption
    borrowing: bool


class QuotaListOut(BaseModel):
    items: list[QuotaOut]


class CohortIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PolicyName
    parent: PolicyName | None = None


class CohortParentIn(BaseModel):
    """Move a cohort; ``parent: null`` puts it directly under the center's root."""

    model_config = ConfigDict(extra="forbid")

    parent: PolicyName | None


class CohortOut(BaseModel):
    id: str
    name: str
    parent: str | None
    #: member projects the caller may see
    projects: list[str]
    children: list[str]


class CohortListOut(BaseModel):
    items: list[CohortOut]


class ProjectCohortIn(BaseModel):
    """``cohort: null`` takes the project out of its cohort (back under the root)."""

    model_config = ConfigDict(extra="forbid")

    cohort: PolicyName | None


class ProjectLimitsIn(BaseModel):
    """Change a project's scheduling settings.

    A field left out (or null) keeps its value; a limit is removed by naming it in
    ``clear``. Null does not mean "clear" so that a partial update never drops a limit
    by accident.
    """

    model_config = ConfigDict(extra="forbid")

    fair_share_weight: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    max_running_jobs: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_gpus: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    clear: Annotated[list[ClearableLimit], Field(max_length=2)] = []


class ProjectPolicyOut(BaseModel):
    id: str
    name: str
    cohort: str | None
    fair_share_weight: float
    max_running_jobs: int | None
    max_gpus: int | None


class ReservationNodeIn(BaseModel):
    """A node to reserve; ``devices`` absent means all of its devices."""

    model_config = ConfigDict(extra="forbid")

    node: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    devices: (
        Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=1024)] | None
    ) = None


class ReservationIn(BaseModel):
    """Devices held for one project in ``[starts_at, ends_at)``; times without a zone are
    UTC; no ``starts_at`` means now."""

    model_config = ConfigDict(extra="forbid")

    name: PolicyName
    project: ProjectRef
    starts_at: datetime | None = None
    ends_at: datetime
    nodes: Annotated[list[ReservationNodeIn], Field(min_length=1, max_length=1000)]


class ReservationNodeOut(BaseModel):
    node: str
    devices: list[int]


class ReservationOut(BaseModel):
    id: str
    name: str
    #: "(other tenant)" when the caller may not see the project
    project: str
    project_id: str | None
    starts_at: datetime
    ends_at: datetime
    nodes: list[ReservationNodeOut]
    #: the window contains the present moment
    active: bool


class ReservationListOut(BaseModel):
    items: list[ReservationOut]
