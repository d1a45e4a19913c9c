"""Request and response bodies of the API (pydantic), shared by the API and its tests.

``*In`` models are what callers send (validated strictly, unknown fields refused);
``*Out`` models are what the API answers.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from axcenter.model.dependencies import parse_dependency
from axcenter.model.jobs import JobOutput
from axcenter.model.logpath import check_log_pattern

__all__ = [
    "MAX_INT64",
    "AllocationListOut",
    "AllocationOut",
    "ApproveIn",
    "ArrayIn",
    "ArrayOut",
    "AssignIn",
    "AuditListOut",
    "AuditOut",
    "BalanceItemOut",
    "BalanceOut",
    "BurndownDayOut",
    "BurndownOut",
    "ChargeOut",
    "ChargesOut",
    "ClusterOut",
    "CohortIn",
    "CohortListOut",
    "CohortOut",
    "CohortParentIn",
    "CommentIn",
    "ConflictIn",
    "ConflictListOut",
    "ConflictOut",
    "DecisionIn",
    "DeviceOut",
    "EventOut",
    "HistoryOut",
    "HistoryPointOut",
    "JobBatchIn",
    "JobIn",
    "JobListOut",
    "JobOut",
    "MemberIn",
    "MemberOut",
    "NodeOut",
    "OrganizationIn",
    "OrganizationListOut",
    "OrganizationOut",
    "PlacementOut",
    "PriceIn",
    "PriceListOut",
    "PriceOut",
    "ProgramIn",
    "ProgramListOut",
    "ProgramOut",
    "ProgramPatchIn",
    "ProjectCohortIn",
    "ProjectDetailOut",
    "ProjectIn",
    "ProjectInfoListOut",
    "ProjectInfoOut",
    "ProjectLimitsIn",
    "ProjectOut",
    "ProjectPatchIn",
    "ProjectPolicyOut",
    "QueueItemOut",
    "QueueOut",
    "QuotaIn",
    "QuotaListOut",
    "QuotaOut",
    "RequestEventOut",
    "RequestIn",
    "RequestListOut",
    "RequestOut",
    "ReservationIn",
    "ReservationListOut",
    "ReservationNodeIn",
    "ReservationNodeOut",
    "ReservationOut",
    "ResubmitIn",
    "ReviewIn",
    "SummaryOut",
    "TokenIn",
    "TokenOut",
    "TokenRotateIn",
    "UsageReportOut",
    "UsageRowOut",
    "UserIn",
    "UserListOut",
    "UserOut",
    "UserPatchIn",
    "WhoAmIOut",
]

#: the bound of every integer a query takes (offsets, cursors): what a database's BIGINT
#: and a file offset hold; larger values are refused with 422, never passed on (a 500)
MAX_INT64 = 2**63 - 1

#: what the operating system takes in an argument, a variable or a path: no NUL byte
#: (one would fail the launch, never the cycle, but it is refused here with its field)
_NO_NUL = r"^[^\x00]*$"
Arg = Annotated[str, StringConstraints(max_length=4096, pattern=_NO_NUL)]
EnvKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
EnvValue = Annotated[str, StringConstraints(max_length=4096, pattern=_NO_NUL)]
Path_ = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=_NO_NUL)]
GpuType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]


def _log_pattern(value: str) -> str:
    check_log_pattern(value)  # its ValueError names the fault and the accepted symbols
    return value


LogPattern = Annotated[str, AfterValidator(_log_pattern)]


def _dependency(value: str) -> str:
    parse_dependency(value)  # its ValueError names the part at fault
    return value.strip()


Dependency = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_dependency)]

#: the largest batch script shipped with a job (sbatch's own limit is 4 MB; an array's
#: tasks each keep a copy)
MAX_SCRIPT_BYTES = 64 * 1024


def _script(value: str) -> str:
    size = len(value.encode())
    if size > MAX_SCRIPT_BYTES:
        raise ValueError(
            f"the batch script is {size:,} bytes; at most {MAX_SCRIPT_BYTES // 1024} KiB is "
            "shipped with a job: keep data in files the script reads"
        )
    if "\x00" in value:
        raise ValueError("a batch script is text: it may not contain NUL bytes")
    if not value.startswith("#!"):
        raise ValueError("a batch script must begin with #! and its interpreter (#!/bin/bash)")
    return value


Script = Annotated[str, AfterValidator(_script)]


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    command: Annotated[list[Arg], Field(min_length=1, max_length=1000)]
    workdir: (
        Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=_NO_NUL)] | None
    ) = None
    env: Annotated[dict[EnvKey, EnvValue], Field(max_length=200)] = {}
    gpus_per_node: Annotated[int, Field(ge=0, le=64)] = 1
    nodes: Annotated[int, Field(ge=1, le=1024)] = 1
    cpus_per_node: Annotated[int, Field(ge=1, le=4096)] | None = None
    memory_mb_per_node: Annotated[int, Field(ge=1, le=64 * 1024 * 1024)] | None = None
    time_limit_s: Annotated[int, Field(ge=1)] | None = None
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    gpu_types: Annotated[list[GpuType], Field(max_length=16)] = []
    #: "log": stdout and stderr to the job's log (``axc logs``); "discard": nowhere
    output: JobOutput = JobOutput.LOG
    #: Slurm's ``--output``/``--error`` file name patterns (``model.logpath``): stored as
    #: written, expanded at launch; None: the center's log of the job
    output_path: LogPattern | None = None
    error_path: LogPattern | None = None
    #: submitted held (Slurm's ``sbatch --hold``): pending until released
    held: bool = False
    #: whole nodes (Slurm's ``--exclusive``): every GPU, CPU and MB of each node it gets;
    #: the accepted types' nodes must be all of one size
    exclusive: bool = False
    #: Slurm's ``--dependency`` (``model.dependencies``): afterok:JOB, singleton, ...
    dependency: Dependency | None = None
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    #: a batch script's content (``axc submit script.sh``, as sbatch ships it): the job
    #: runs this text, kept with it, as ``command[0]`` with ``command[1:]`` as arguments
    script: Script | None = None


class TemplateIn(BaseModel):
    """A project's job template: a ``name`` and the job it submits (``job``: a job's
    fields; its ``project`` is the template's, its idempotency key, hold and dependency
    are the submission's own, so a template has none)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    job: JobIn


class TemplateOut(BaseModel):
    id: str
    project: str
    name: str
    description: str
    #: the job it submits: ``JobIn``'s fields, without the project
    job: dict[str, Any]
    created_by: str
    created_at: datetime


class TemplateUseIn(BaseModel):
    """What differs this time when a template's job is submitted."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    priority: Annotated[int, Field(ge=-1000, le=1000)] | None = None
    time_limit_s: Annotated[int, Field(ge=1)] | None = None
    held: bool = False
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class TemplateListOut(BaseModel):
    items: list[TemplateOut]


class ArrayIn(JobIn):
    """A job array: one spec, run once per index (``AXC_ARRAY_INDEX``); ``indices`` as
    Slurm's ``--array`` writes them (``model.arrays``)."""

    indices: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]


class ArrayOut(BaseModel):
    array_id: str
    tasks: int
    first_index: int
    last_index: int
    #: at most this many tasks started and not ended at once (``%`` in the indices)
    throttle: int | None = None
    states: dict[str, int]  # tasks per state
    job_ids: list[str] | None = None


class JobUpdateIn(BaseModel):
    """What may change in a job that has not started (Slurm's ``scontrol update``); the
    name may change at any time."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    time_limit_s: Annotated[int, Field(ge=1)] | None = None
    priority: Annotated[int, Field(ge=-1000, le=1000)] | None = None


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
    output: str = JobOutput.LOG.value
    output_path: str | None = None
    error_path: str | None = None
    held: bool = False
    dependency: str | None = None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None
    attempts: int
    idempotency_key: str | None
    array_id: str | None = None
    array_index: int | None = None
    borrowed: bool = False  # runs beyond its project's nominal quota: may be preempted
    estimated_start: datetime | None = None  # the backfill reservation of a waiting job
    #: a pending job's place in the whole queue, and the queue's length (``/queue``)
    queue_position: int | None = None
    queue_length: int | None = None
    #: when the job last reported a checkpoint (``axc checkpoint``); None: never
    last_checkpoint_at: datetime | None = None
    events: list[EventOut] | None = None
    #: how busy each run kept its GPUs, where its engine saw real GPUs (``GET /jobs/{id}``)
    gpu_usage: list[RunGpuUsageOut] | None = None
    #: the steps run in its allocation (``axc srun``), with ``events``
    steps: list[StepOut] | None = None
    #: the batch script submitted with it (``axc submit script.sh``), with ``events``
    script: str | None = None


class RunGpuUsageOut(BaseModel):
    """A run's GPU utilisation, summarised by its engine from samples."""

    attempt: int
    ended_at: datetime
    samples: int
    util_mean_pct: int
    util_max_pct: int
    memory_max_mib: int
    #: the share of samples at or below 5% (GPUs held, doing nothing), in basis points
    idle_bp: int


class StepIn(BaseModel):
    """A step to run inside a running job's allocation (``axc srun``)."""

    model_config = ConfigDict(extra="forbid")
    command: Annotated[list[Arg], Field(min_length=1, max_length=1000)]
    env: Annotated[dict[EnvKey, EnvValue], Field(max_length=200)] = {}


class StepOut(BaseModel):
    """One step, as sacct shows ``JOB.N``."""

    id: str  # JOB.N
    step: int
    attempt: int
    user: str
    command: list[str]
    state: str  # running, then succeeded, failed, cancelled or lost
    started_at: datetime
    ended_at: datetime | None
    exit_code: int | None
    message: str


class JobListOut(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class ProjectOut(BaseModel):
    id: str
    name: str
    organization: str
    sector: str


class WhoAmIOut(BaseModel):
    id: str
    name: str
    organization_id: str
    organization: str
    role: str
    #: the center's time zone (IANA name): its days, and how its times are shown
    time_zone: str = "UTC"


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
    #: who jobs run as (docs/security.md): managed, mapped or single-user
    identities: str = "managed"
    #: single-user mode: the only user whose jobs run, as the service's own account
    single_user: str | None = None


class ClusterOut(BaseModel):
    nodes: list[NodeOut]
    summary: SummaryOut


class HistoryPointOut(BaseModel):
    """One bucket of the cluster's history, starting at ``at``."""

    at: datetime
    #: mean GPUs busy per GPU type over the bucket
    gpus_used: dict[str, float]
    #: gpus_used / the type's GPUs (0 to 1)
    utilization: dict[str, float]
    #: mean number of pending jobs over the bucket
    pending_jobs: float
    #: runs that started in the bucket, and percentiles of their queue waits
    starts: int
    wait_p50_s: float | None
    wait_p90_s: float | None


class HistoryOut(BaseModel):
    since: datetime
    until: datetime
    bucket_s: float
    #: GPUs per GPU type now
    capacity: dict[str, int]
    #: buckets from the one holding the center's first job event (none before it)
    points: list[HistoryPointOut]


class QueueItemOut(BaseModel):
    """A pending job in scheduling order."""

    #: 1 = the first job the scheduler considers, counted over the whole queue
    position: int
    id: str
    name: str
    project: str
    user: str
    gpus_per_node: int
    nodes: int
    gpu_types: list[str]
    priority: int
    submitted_at: datetime
    reason: str
    estimated_start: datetime | None


class QueueOut(BaseModel):
    items: list[QueueItemOut]
    #: pending jobs the caller may see
    total: int
    #: pending jobs in the whole queue (positions count these)
    queue_length: int = 0


class ChargeOut(BaseModel):
    at: datetime
    #: hold (admission), release (run ended), charge (rated usage)
    kind: str
    allocation_id: str
    gpu_type: str
    gpu_seconds: int
    amount_won: int
    public_won: int
    copay_won: int
    #: a charge's won at list price before the program's modifiers, and the terms it was
    #: booked under (``region Gwangju -50%; self-paid 20%``); None on holds and releases
    list_won: int | None = None
    terms: str | None = None


class JobAccountOut(BaseModel):
    """One job as ``sacct`` shows it: its runs' time, GPU use and what it cost."""

    id: str
    name: str
    user: str
    project: str
    state: str
    array_id: str | None
    array_index: int | None
    gpus: int  # all nodes
    gpu_type: str | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    #: the latest run, start to end (to now while it runs)
    elapsed_s: int
    #: every run: the ledger's GPU-seconds, or the latest run's for a job charged nothing
    gpu_seconds: int
    #: the rated charges of every run, in won
    charged_won: int
    exit_code: int | None
    #: the steps run in its allocation (``axc srun``), without their commands
    steps: list[StepOut] = []


class JobAccountsOut(BaseModel):
    items: list[JobAccountOut]
    since: datetime
    until: datetime
    #: more jobs matched than ``limit``: narrow the period or the filters
    truncated: bool


class ChargesOut(BaseModel):
    job_id: str
    items: list[ChargeOut]
    #: sum of the ``charge`` rows: what the job cost
    charged_won: int
    #: holds not yet released
    held_won: int
    #: a running job's usage so far, rated as it will be charged at its end (not charged yet)
    accrued_won: int = 0


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
    #: "set" by an operator, or derived from the project's active "grant" (its GPU-hours
    #: spread evenly over the grant's window); an operator's quota replaces a grant's
    source: Literal["set", "grant"] = "set"


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


# -- programs, organizations, people, projects, allocations, prices, audit ----------------

#: display names (programs, organizations): anything printable but slashes (URL segments)
DisplayName = Annotated[
    str, StringConstraints(pattern=r"^[^/\x00-\x1f]{1,200}$", strip_whitespace=True)
]
LongText = Annotated[str, StringConstraints(max_length=20_000)]
Won = Annotated[int, Field(ge=0, le=10**15)]
BasisPoints = Annotated[int, Field(ge=0, le=10_000)]
#: GPU-hours of one type in a request or an approval (whole hours)
GpuHours = Annotated[int, Field(ge=1, le=100_000_000)]
GpuHourItems = Annotated[dict[GpuType, GpuHours], Field(max_length=16)]
RoleName = Literal["operator", "program_manager", "reviewer", "org_admin", "member"]
SizeClass = Literal["SME", "mid", "large"]
RequestKind = Literal["new", "topup", "extension", "termination"]
OnExhaustion = Literal["stop", "preemptible"]
WarningLevel = Literal["none", "80%", "100%"]


class ProgramIn(BaseModel):
    """A funding program; ``public_share_bp`` is the public subsidy in basis points
    (8000: the program pays 80% of every charge, the company co-pays 20%)."""

    model_config = ConfigDict(extra="forbid")

    name: DisplayName
    budget_won: Won
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    public_share_bp: BasisPoints = 10_000
    description: LongText = ""


class ProgramPatchIn(BaseModel):
    """Fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    name: DisplayName | None = None
    budget_won: Won | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    public_share_bp: BasisPoints | None = None
    description: LongText | None = None


class ProgramOut(BaseModel):
    id: str
    name: str
    budget_won: int
    #: won granted by the program's allocations so far
    allocated_won: int
    public_share_bp: int
    starts_at: datetime | None
    ends_at: datetime | None
    description: str
    created_at: datetime


class ProgramListOut(BaseModel):
    items: list[ProgramOut]


class OrganizationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: DisplayName
    registration_no: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    size_class: SizeClass | None = None
    region: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    #: youth-startup terms of programs apply to it
    youth_startup: bool = False


class OrganizationOut(BaseModel):
    id: str
    name: str
    registration_no: str | None
    size_class: str | None
    region: str | None
    youth_startup: bool = False
    created_at: datetime


class OrganizationListOut(BaseModel):
    items: list[OrganizationOut]


#: the longest a token may be issued for (ten years)
MAX_TOKEN_DAYS = 3650


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(max_length=100)] = ""
    #: days until the token expires; None: valid until revoked
    expires_in_days: Annotated[int, Field(ge=1, le=MAX_TOKEN_DAYS)] | None = None


class ConflictIn(BaseModel):
    """A conflict of interest a reviewer declares with an organization (name or id)."""

    model_config = ConfigDict(extra="forbid")

    organization: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


class ConflictOut(BaseModel):
    organization: str
    reason: str
    declared_at: datetime


class ConflictListOut(BaseModel):
    items: list[ConflictOut]


class TokenRotateIn(BaseModel):
    """Rotating replaces a token by a new one of the same name and revokes the old one
    at once; without ``expires_in_days``, the new one lasts as long as the old one did."""

    model_config = ConfigDict(extra="forbid")

    expires_in_days: Annotated[int, Field(ge=1, le=MAX_TOKEN_DAYS)] | None = None


class TokenOut(BaseModel):
    id: str
    user: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = None
    #: the token itself: only in the answer that issues it, never again
    token: str | None = None


class UserIn(BaseModel):
    """A new user; without ``organization``, the caller's. A first token is issued
    (and shown once) unless ``token`` is false."""

    model_config = ConfigDict(extra="forbid")

    name: PolicyName
    organization: DisplayName | None = None
    role: RoleName = "member"
    token: bool = True


class UserPatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: RoleName | None = None
    active: bool | None = None


class UserOut(BaseModel):
    id: str
    name: str
    organization_id: str
    organization: str
    role: str
    active: bool
    created_at: datetime
    #: the user's tokens (never their secrets); only in single-user answers
    tokens: list[TokenOut] | None = None
    #: the first token, in the answer that creates the user only
    token: str | None = None


class UnixAccountIn(BaseModel):
    """An existing unix account to run a user's jobs as (``mapped`` identities)."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$", description="its unix name")


class UnixAccountOut(BaseModel):
    user: str
    account: str
    uid: int
    gid: int
    home: str
    managed: bool


class UserListOut(BaseModel):
    items: list[UserOut]


class ProjectIn(BaseModel):
    """A project of an organization (default: the caller's) under a program."""

    model_config = ConfigDict(extra="forbid")

    name: PolicyName
    organization: DisplayName | None = None
    program: DisplayName | None = None
    sector: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    objective: LongText = ""
    #: the principal investigator (a user of the organization); becomes a member
    pi: PolicyName | None = None
    members: Annotated[list[PolicyName], Field(max_length=1000)] = []


class ProjectPatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program: DisplayName | None = None
    sector: Annotated[str, StringConstraints(min_length=1, max_length=50)] | None = None
    objective: LongText | None = None
    pi: PolicyName | None = None


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: PolicyName


class MemberOut(BaseModel):
    id: str
    name: str
    role: str


class ProjectInfoOut(ProjectOut):
    organization_id: str
    program: str | None
    program_id: str | None
    objective: str
    pi: str | None
    created_at: datetime


class ProjectInfoListOut(BaseModel):
    items: list[ProjectInfoOut]


class BalanceItemOut(BaseModel):
    gpu_type: str
    granted_gpu_seconds: int
    #: charged and held GPU-seconds
    used_gpu_seconds: int
    left_gpu_seconds: int
    granted_gpu_hours: float
    left_gpu_hours: float


class BalanceOut(BaseModel):
    """An allocation's envelopes. ``used_fraction`` is that of its most used envelope
    (won, or the GPU-hours of one type), charges and holds of running jobs counted."""

    granted_won: int
    charged_won: int
    held_won: int
    left_won: int
    used_fraction: float
    warning: WarningLevel
    items: list[BalanceItemOut]


class AllocationOut(BaseModel):
    id: str
    project: str
    project_id: str
    program: str
    program_id: str
    request_id: str | None
    starts_at: datetime
    ends_at: datetime
    status: str
    on_exhaustion: str
    created_at: datetime
    balance: BalanceOut


class AllocationListOut(BaseModel):
    items: list[AllocationOut]


class ProjectDetailOut(ProjectInfoOut):
    #: empty for callers who may only read the project's basic information
    members: list[MemberOut]
    allocations: list[AllocationOut]
    #: one line per allocation at or above 80% used
    warnings: list[str]
    #: an active allocation covers now: the project's GPU jobs are charged to it
    allocated: bool = False
    #: the center's policy for GPU jobs of a project without one: ``free`` (they run
    #: without charge, preemptible unless an operator set a quota) or ``refuse``
    unallocated_gpu_jobs: str = "free"


class RequestIn(BaseModel):
    """A request for GPU-hours per GPU type.

    ``new`` (under ``program``, default the project's) needs ``items`` and a window;
    ``topup`` (items), ``extension`` (a later ``ends_at``) and ``termination`` name the
    ``allocation`` they change.
    """

    model_config = ConfigDict(extra="forbid")

    project: ProjectRef
    kind: RequestKind = "new"
    program: DisplayName | None = None
    allocation: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    items: GpuHourItems = {}
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    justification: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


class RequestEventOut(BaseModel):
    at: datetime
    actor: str
    actor_id: str
    action: str
    score: int | None
    comment: str
    items: dict[str, int] | None
    #: a rubric review: the score per criterion, and their weighted total (out of 100)
    scores: dict[str, int] | None = None
    total: float | None = None


class AttachmentOut(BaseModel):
    """A file attached to a request (``service.attachments``); its bytes at
    ``/allocation-requests/{request}/attachments/{id}``."""

    id: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime


class RequestContextOut(BaseModel):
    """What a reviewer weighs beside the request itself (a request read one at a time)."""

    organization: str
    size_class: str | None
    #: the GPU-hours asked at today's prices (types without a price count 0)
    value_won: int
    #: the project's charges over the last 30 days, and its running jobs' usage so far
    charged_30d_won: int
    accrued_won: int
    #: won left on the project's active allocations
    left_won: int


class RequestOut(BaseModel):
    id: str
    project: str
    project_id: str
    program: str
    program_id: str
    kind: str
    allocation_id: str | None
    #: GPU-hours per GPU type
    items: dict[str, int]
    starts_at: datetime
    ends_at: datetime
    justification: str
    status: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    reviewers: list[str]
    #: mean of each reviewer's latest score (None before any review, and under a rubric)
    mean_score: float | None
    #: the rubric of the program's rules in force when the request was filed (criteria:
    #: key, label, weight, scale); empty: reviews give one score 1..5
    rubric: list[dict[str, Any]] = []
    #: under a rubric: the mean of the reviewers' latest weighted totals (out of 100)
    weighted_total: float | None = None
    #: the bonus points of the applicant's organization (regional preference...) and the
    #: preferences that give them; ``total`` = ``weighted_total`` + these points
    preference_points: int = 0
    preferences: list[str] = []
    total: float | None = None
    events: list[RequestEventOut] | None = None
    #: the steps the caller may take now (``review``; ``decide``: approve, reject or
    #: return; ``resubmit``, ``withdraw``), in a request read one at a time; None in lists
    actions: list[str] | None = None
    context: RequestContextOut | None = None
    #: the files attached, in a request read one at a time (None in lists)
    attachments: list[AttachmentOut] | None = None


class RequestListOut(BaseModel):
    items: list[RequestOut]


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reviewers: Annotated[list[PolicyName], Field(min_length=1, max_length=20)]


class ReviewIn(BaseModel):
    """A review: one ``score`` (1..5), or, where the program has a rubric, ``scores``,
    one per criterion (1..its scale)."""

    model_config = ConfigDict(extra="forbid")

    score: Annotated[int, Field(ge=1, le=5)] | None = None
    scores: (
        Annotated[dict[Annotated[str, StringConstraints(max_length=32)], int], Field(max_length=20)]
        | None
    ) = None
    comment: LongText = ""


class ApproveIn(BaseModel):
    """Approve, optionally granting less than asked (``items``: new and top-up requests).

    For a new allocation, ``starts_at``/``ends_at`` may set another window and
    ``on_exhaustion`` says what happens to the project's jobs once the grant is spent;
    for an extension, ``ends_at`` may grant a shorter one than asked. Other kinds
    ignore these fields.
    """

    model_config = ConfigDict(extra="forbid")

    items: GpuHourItems | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    on_exhaustion: OnExhaustion = "stop"
    comment: LongText = ""


class DecisionIn(BaseModel):
    """Reject or return: the reason is required (it is what the applicant reads)."""

    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


class ResubmitIn(BaseModel):
    """Resubmit a returned request; fields given replace the request's."""

    model_config = ConfigDict(extra="forbid")

    items: GpuHourItems | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    justification: Annotated[str, StringConstraints(min_length=1, max_length=20_000)] | None = None
    comment: LongText = ""


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: LongText = ""


class PriceIn(BaseModel):
    """Won per GPU-hour of a GPU type from ``effective_from`` (default now) on."""

    model_config = ConfigDict(extra="forbid")

    gpu_type: GpuType
    won_per_gpu_hour: Annotated[int, Field(ge=0, le=10**9)]
    effective_from: datetime | None = None


class PriceOut(BaseModel):
    id: str
    gpu_type: str
    won_per_gpu_hour: int
    effective_from: datetime
    #: the price charged now for this type
    in_force: bool
    created_by: str | None
    created_at: datetime


class PriceListOut(BaseModel):
    items: list[PriceOut]


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str | None
    actor_id: str | None
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]


class AuditListOut(BaseModel):
    items: list[AuditOut]
    #: pass as ``cursor`` for the next (older) page
    next_cursor: int | None


# -- reports (docs/accounting.md): won are integers, GPU-hours and ratios exact decimals ----


class UsageRowOut(BaseModel):
    """One group of a usage report, or its total (``keys`` all null).

    GPU-hours are GPU-seconds / 3600 rounded half up to 0.001 per row; the total's
    GPU-hours are the sum of the rows' (the column foots) and its GPU-seconds and won equal
    the ledger's sums. Decimals are sent as strings so that no digit is lost.
    """

    keys: dict[str, str | None]
    granted_gpu_seconds: int
    granted_gpu_hours: Decimal
    used_gpu_seconds: int
    used_gpu_hours: Decimal
    #: used / granted GPU-seconds, rounded half up to 0.0001 (null: nothing granted)
    utilization: Decimal | None
    charged_won: int
    public_won: int
    copay_won: int
    #: charged runs
    runs: int
    #: jobs whose latest run started in the period, and their queue waits in seconds
    jobs: int
    wait_mean_s: Decimal | None
    wait_p95_s: Decimal | None


class UsageReportOut(BaseModel):
    group_by: list[str]
    since: datetime | None
    until: datetime | None
    generated_at: datetime
    rows: list[UsageRowOut]
    total: UsageRowOut


class BurndownDayOut(BaseModel):
    day: date
    charged_won: int
    public_won: int
    cumulative_charged_won: int
    cumulative_public_won: int
    #: budget minus the cumulative won that count against it
    remaining_won: int


class BurndownOut(BaseModel):
    """A program's budget against its charges, and when it runs out at the current rate."""

    program_id: str
    program: str
    budget_won: int
    granted_won: int
    charged_won: int
    public_won: int
    copay_won: int
    remaining_won: int
    #: won per day that count against the budget, averaged over the last 7 days
    rate_won_per_day: Decimal
    #: the day (of ``time_zone``) the budget runs out at that rate (null: it does not at
    #: a zero rate)
    forecast: date | None
    starts_at: datetime | None
    ends_at: datetime | None
    now: datetime
    days: list[BurndownDayOut]
    #: the time zone whose days ``days`` and ``forecast`` are (the center's)
    time_zone: str = "UTC"
    #: the forecast band: the day the budget runs out at the fastest and the slowest
    #: 7-day rate of the last 28 days (null: never, at a zero rate)
    forecast_early: date | None = None
    forecast_late: date | None = None
    #: running jobs' open holds (less what their accruals took), and their usage since
    #: their latest accrual rated as it will be charged: not in ``charged_won`` yet
    #: (``accounting.accrual``)
    held_won: int = 0
    accrued_won: int = 0
    running_jobs: int = 0


class NotificationOut(BaseModel):
    """Something its reader should hear about (``service.notifications``)."""

    #: when it happened (None: a standing alert, such as a grant 80% used)
    at: datetime | None
    #: ``job.<state>``, ``request.<action>``, ``grant.80%``, ``grant.100%``, ``grant.expiring``
    kind: str
    #: the job, request or allocation it is about, and a name for it
    ref: str
    subject: str
    until: datetime | None = None


class UsageBucketOut(BaseModel):
    """One period of a usage series, from ``start`` to ``end`` in the center's zone;
    ``partial``: it has not ended (its figures are so far, not a full period's)."""

    start: datetime
    end: datetime
    partial: bool


class UsageSeriesItemOut(BaseModel):
    """One organization, project or user: its GPU-hours and won charged per bucket."""

    key: str
    label: str
    gpu_hours: list[float]
    won: list[int]
    total_gpu_hours: float
    total_won: int


class UsageJobOut(BaseModel):
    """A job at the bottom of a drill-down, with what it was charged in the window."""

    id: str
    name: str
    state: str
    gpu_hours: float
    won: int
    last_charged_at: datetime


class UsageOverTimeOut(BaseModel):
    """Usage over time at one level of the drill-down (organizations -> projects ->
    users -> jobs), charges booked per bucket, for what the caller may see."""

    level: Literal["organization", "project", "user", "job"]
    period: Literal["day", "week", "month"]
    time_zone: str
    organization: str | None = None
    project: str | None = None
    user: str | None = None
    #: the first charge the center booked: no bucket starts before its own
    first_at: datetime | None
    buckets: list[UsageBucketOut]
    series: list[UsageSeriesItemOut]
    #: at the user level: the user's jobs charged in the window
    jobs: list[UsageJobOut] | None = None


class MailSettingsIn(BaseModel):
    """Which notifications reach the caller by e-mail, where, and in which language."""

    model_config = ConfigDict(extra="forbid")

    #: None: no e-mail at all
    address: (
        Annotated[
            str,
            StringConstraints(
                max_length=254, pattern=r"^[^@\s<>,;\\\"]+@[^@\s<>,;\\\"]+\.[^@\s<>,;\\\"]+$"
            ),
        ]
        | None
    ) = None
    language: Literal["ko", "en"] = "ko"
    #: the kinds wanted (``service.mail.KINDS``)
    kinds: Annotated[
        list[Annotated[str, StringConstraints(max_length=40)]], Field(max_length=20)
    ] = []


class MailSettingsOut(BaseModel):
    address: str | None
    language: str
    kinds: list[str]
    #: whether the center sends e-mail at all (an SMTP server is configured)
    enabled: bool
    #: every kind one may choose
    choices: list[str]


class DailyUsageOut(BaseModel):
    """Charges of one user on one day (of the center's zone)."""

    day: date
    user: str
    charged_won: int
    gpu_seconds: int


class ProjectUsageOut(BaseModel):
    """A project's charges per day and user over the last ``days`` days."""

    project: str
    days: int
    time_zone: str
    rows: list[DailyUsageOut]
