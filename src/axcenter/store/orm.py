"""Tables. One class per table; relationships only where a query needs them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    literal_column,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from axcenter.store.types import UTCDateTime, utcnow

__all__ = [
    "ApiToken",
    "Base",
    "Cohort",
    "DeviceLease",
    "Job",
    "JobEvent",
    "JobStep",
    "Node",
    "Organization",
    "Program",
    "Project",
    "ProjectGroup",
    "ProjectMember",
    "ProjectQuota",
    "Reservation",
    "ReviewerConflict",
    "UnixAccount",
    "User",
    "WebSession",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(32)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Program(Base):
    """A funding program: the money behind allocations (budget in integer won).

    ``public_share_bp`` is the co-funding rule in basis points: 8000 means the program
    pays 80% of every charge and the company co-pays 20%.
    """

    __tablename__ = "programs"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    budget_won: Mapped[int] = mapped_column(BigInteger)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    public_share_bp: Mapped[int] = mapped_column(Integer, default=10000, server_default="10000")
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    registration_no: Mapped[str | None] = mapped_column(String(64))
    size_class: Mapped[str | None] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(100))
    #: youth-startup terms of a program's rules apply to it
    youth_startup: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Cohort(Base):
    """A group of projects that lend and borrow idle quota among themselves.

    Cohorts nest; a project without a cohort, and a cohort without a parent, sit in the
    center's root cohort.
    """

    __tablename__ = "cohorts"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("cohorts.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    program_id: Mapped[str | None] = mapped_column(ForeignKey("programs.id"))
    sector: Mapped[str] = mapped_column(String(50))
    cohort_id: Mapped[str | None] = mapped_column(ForeignKey("cohorts.id"))
    fair_share_weight: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    max_running_jobs: Mapped[int | None]
    max_gpus: Mapped[int | None]
    objective: Mapped[str] = mapped_column(Text, default="", server_default="")
    pi_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectQuota(Base):
    """A project's quota of one GPU type (sched: ``model.quota.Quota``)."""

    __tablename__ = "project_quotas"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    gpu_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    nominal: Mapped[int]
    borrowing_limit: Mapped[int | None]
    lending_limit: Mapped[int | None]


class Reservation(Base):
    """Devices held for one project during a time window."""

    __tablename__ = "reservations"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    #: [{"node_id": ..., "devices": [...]}, ...]
    devices: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectMember(Base):
    __tablename__ = "project_members"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)


class UnixAccount(Base):
    """The unix account a user's jobs run as (docs/security.md): created by axcenter in
    its uid range (``managed``, with a personal group ``gid``), or mapped by an operator
    to an existing one."""

    __tablename__ = "unix_accounts"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    uid: Mapped[int] = mapped_column(Integer, unique=True)
    gid: Mapped[int] = mapped_column(Integer)
    home: Mapped[str] = mapped_column(Text)
    managed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectGroup(Base):
    """A project's unix group: the primary group of its jobs, owner of its directory."""

    __tablename__ = "project_groups"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    gid: Mapped[int] = mapped_column(Integer, unique=True)
    managed: Mapped[bool] = mapped_column(Boolean)


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored: tokens are 256-bit random, so no salt."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    #: None: valid until revoked
    expires_at: Mapped[datetime | None]


class WebSession(Base):
    """A dashboard session: its own short-lived credential (the cookie holds a random
    secret, the table its SHA-256), not the API token it was opened with. Signing out
    revokes it on the server; it also ends at ``expires_at`` and with its user."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class SignInCredential(Base):
    """A user's password (an Argon2id hash) and second factor (a TOTP secret), for
    centers without single sign-on (docs/security.md, "Signing in").

    ``totp_confirmed_at`` None: enrolment is under way (the secret was shown, no code from
    it was entered yet). ``totp_last_step`` is the last time step whose code was taken: a
    code is accepted once. ``failures`` counts second-factor failures in a row; at the
    limit ``locked_at`` is set and only an operator's reset unlocks the account."""

    __tablename__ = "sign_in_credentials"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(Text)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_confirmed_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecoveryCode(Base):
    """A one-time code that stands in for the second factor (the phone is lost). 80 random
    bits, so its SHA-256 is stored; ``used_at`` set when it was spent."""

    __tablename__ = "recovery_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class ExternalIdentity(Base):
    """A user of an OpenID provider (its issuer and the stable ``sub`` it gives), linked
    to an axcenter user at the first single sign-on."""

    __tablename__ = "external_identities"
    issuer: Mapped[str] = mapped_column(String(500), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]


class SignInFlow(Base):
    """A sign-in under way: a single sign-on waiting for the provider's answer (``sso``:
    its state's hash, nonce and PKCE verifier), a password waiting for its second factor
    (``second_factor``), a second factor being enrolled (``enrol``), or an operator's
    password reset link (``reset``). The browser holds the secret; each is used once."""

    __tablename__ = "sign_in_flows"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    next_url: Mapped[str] = mapped_column(String(2000), default="/ui/")
    nonce: Mapped[str | None] = mapped_column(String(100))
    code_verifier: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ReviewerConflict(Base):
    """A conflict of interest a reviewer declared: an organization whose requests the
    reviewer may not be assigned (a competitor, a former employer), besides the
    reviewer's own organization, which always is one."""

    __tablename__ = "reviewer_conflicts"
    reviewer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    declared_at: Mapped[datetime] = mapped_column(default=utcnow)


class Node(Base):
    __tablename__ = "nodes"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    gpu_type: Mapped[str] = mapped_column(String(32))
    gpu_count: Mapped[int] = mapped_column(Integer)
    cpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    logical: Mapped[bool] = mapped_column(Boolean)
    rack: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A job's spec and its current state. ``state`` is derived from ``job_events``:
    both are written in the same transaction by ``store.jobs.transition``."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_jobs_state_submitted", "state", "submitted_at"),
        Index("ix_jobs_project_submitted", "project_id", "submitted_at"),
        Index("ix_jobs_state_id", "state", "id"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    command: Mapped[list[Any]]
    workdir: Mapped[str] = mapped_column(Text)
    env: Mapped[dict[str, Any]]
    gpus_per_node: Mapped[int]
    nodes: Mapped[int]
    cpus_per_node: Mapped[int]
    memory_mb_per_node: Mapped[int] = mapped_column(BigInteger)
    time_limit_s: Mapped[int]
    priority: Mapped[int]
    gpu_types: Mapped[list[Any]]
    #: where its output goes (``JobOutput``)
    output: Mapped[str] = mapped_column(String(16), default="log", server_default="log")
    #: held by its owner or an operator: pending, not started until released
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Slurm's --dependency as written (``model.dependencies``), and whether the job still
    #: waits for it (cleared by ``service.dependencies`` when it holds)
    dependency: Mapped[str | None] = mapped_column(Text)
    dependency_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Slurm's --output/--error file name patterns (``model.logpath``); None: the log
    output_path: Mapped[str | None] = mapped_column(Text)
    error_path: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(300))
    gpu_type: Mapped[str | None] = mapped_column(String(32))
    placement: Mapped[list[Any] | None] = mapped_column(JSON)
    submitted_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    exit_code: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: the engine's name of the current run (docs/engines.md), once it accepted it
    engine_ref: Mapped[str | None] = mapped_column(String(200))
    #: admitted beyond its project's nominal quota, so preemptible
    borrowed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: a task of a job array: the array's id and this task's index (AXC_ARRAY_INDEX)
    array_id: Mapped[str | None] = mapped_column(String(32), index=True)
    array_index: Mapped[int | None]
    #: the array's ``%`` throttle: at most this many of its tasks started and not ended
    array_throttle: Mapped[int | None]
    #: the allocation its current run is charged to (None: unfunded)
    allocation_id: Mapped[str | None] = mapped_column(ForeignKey("allocations.id"))
    #: when the job last reported a checkpoint (``axc checkpoint``); None: never
    last_checkpoint_at: Mapped[datetime | None]
    #: a batch script's content, submitted with the job (``axc submit script.sh``)
    script: Mapped[str | None] = mapped_column(Text)


#: the pending jobs, as the partial indexes below say it (a literal, not a parameter:
#: so the planners of both databases can tell that a query's rows are all indexed)
JOB_PENDING = Job.state == literal_column("'pending'")

#: the pending jobs of each project in its queue order (priority class, submission, id):
#: the queue view walks it without sorting the backlog (``service/queue.py``)
Index(
    "ix_jobs_pending_order",
    Job.project_id,
    Job.priority.desc(),
    Job.submitted_at,
    Job.id,
    Job.state,  # so that SQLite reads a query's rows from the index alone
    sqlite_where=JOB_PENDING,
    postgresql_where=JOB_PENDING,
)
#: the pending jobs of each user, by project
Index(
    "ix_jobs_pending_user",
    Job.user_id,
    Job.project_id,
    sqlite_where=JOB_PENDING,
    postgresql_where=JOB_PENDING,
)


class JobEvent(Base):
    """One lifecycle transition. Append-only: the history a job's state is derived from."""

    __tablename__ = "job_events"
    __table_args__ = (
        Index("ix_job_events_job", "job_id", "id"),
        Index("ix_job_events_at", "at"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    at: Mapped[datetime]
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300), default="")


class RunGpuUsage(Base):
    """How busy one run kept its GPUs (``executors.base.GpuUsage``): a summary of the
    engine's samples, written with the run's end (migration 0016)."""

    __tablename__ = "run_gpu_usage"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    ended_at: Mapped[datetime]
    samples: Mapped[int] = mapped_column(Integer)
    util_mean_pct: Mapped[int] = mapped_column(Integer)
    util_max_pct: Mapped[int] = mapped_column(Integer)
    memory_max_mib: Mapped[int] = mapped_column(Integer)
    idle_samples: Mapped[int] = mapped_column(Integer)
    sample_s: Mapped[float] = mapped_column(Float)


class JobStep(Base):
    """A step run inside a running job's allocation (``axc srun``), as sacct's ``JOB.N``:
    ``state`` is ``running`` until it ends, then an engine outcome."""

    __tablename__ = "job_steps"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt: Mapped[int]  # the job's run it ran in
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))  # who started it
    command: Mapped[list[Any]]
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    exit_code: Mapped[int | None]
    message: Mapped[str] = mapped_column(String(300), default="")


class DeviceLease(Base):
    """A device held by a job. The primary key makes double allocation impossible:
    a plan that would give a held device to a second job fails to apply."""

    __tablename__ = "device_leases"
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
    device_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)


class AllocationRequest(Base):
    """A project's request for GPU-hours under a program, and where its review stands.

    ``kind``: new, topup, extension or termination (the last three name the
    ``allocation_id`` they change). ``items``: GPU-hours per GPU type (integers).
    """

    __tablename__ = "allocation_requests"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    allocation_id: Mapped[str | None] = mapped_column(ForeignKey("allocations.id"))
    items: Mapped[dict[str, Any]]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    justification: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RequestReviewer(Base):
    __tablename__ = "request_reviewers"
    request_id: Mapped[str] = mapped_column(ForeignKey("allocation_requests.id"), primary_key=True)
    reviewer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)


class RequestEvent(Base):
    """Every step of a request's review, with who, when and why (append-only)."""

    __tablename__ = "request_events"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(ForeignKey("allocation_requests.id"), index=True)
    at: Mapped[datetime]
    actor_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(16))
    score: Mapped[int | None]
    comment: Mapped[str] = mapped_column(Text, default="")
    items: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: a rubric review: ``{"scores": {criterion: score}, "rubric": [...], "total": float}``
    scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RequestAttachment(Base):
    """A file attached to a request (a proposal, a budget sheet); its bytes are
    ``attachments/<request>/<id>`` under the data directory (``service.attachments``)."""

    __tablename__ = "request_attachments"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("allocation_requests.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime]


class Template(Base):
    """A project's named job: ``spec`` holds ``service.schemas.JobIn``'s fields but the
    project (the command, or a script run by ``bash -c``; resources; time limit)."""

    __tablename__ = "job_templates"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_job_templates_project_name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]


class MailSettings(Base):
    """A user's e-mail notices (``service.mail``): the address (None: none by e-mail),
    the language they are written in, the kinds wanted, and since when."""

    __tablename__ = "mail_settings"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    address: Mapped[str | None] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(8))
    kinds: Mapped[list[Any]]
    since: Mapped[datetime]


class MailOutbox(Base):
    """One e-mail notice, queued once per user and notification (``key``): ``status``
    ``queued`` (to send at ``next_at``), ``sending``, ``sent`` or ``failed`` (given up)."""

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_status_next_at", "status", "next_at"),)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
    queued_at: Mapped[datetime]
    next_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class Allocation(Base):
    """An approved grant: a project's GPU-hours and won envelope for a time window.

    ``on_exhaustion``: ``stop`` (its jobs wait once the envelope is spent) or
    ``preemptible`` (they may still run, unfunded, as preemptible borrowers).
    """

    __tablename__ = "allocations"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"), index=True)
    request_id: Mapped[str | None] = mapped_column(String(32))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    on_exhaustion: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AllocationItem(Base):
    """What an allocation grants of one GPU type: GPU-seconds and their price in won."""

    __tablename__ = "allocation_items"
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"), primary_key=True)
    gpu_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    gpu_seconds: Mapped[int] = mapped_column(BigInteger)
    won: Mapped[int] = mapped_column(BigInteger)


class Price(Base):
    """Won per GPU-hour of a GPU type from ``effective_from`` on (the price book)."""

    __tablename__ = "prices"
    __table_args__ = (UniqueConstraint("gpu_type", "effective_from"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    gpu_type: Mapped[str] = mapped_column(String(32))
    won_per_gpu_hour: Mapped[int] = mapped_column(BigInteger)
    effective_from: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerEntry(Base):
    """One movement of money against an allocation (append-only).

    ``hold`` reserves a job's worst case at admission, ``release`` returns it when the
    run ends, ``charge`` books the rated usage of the run, split into the program's
    public share and the company's co-pay. Sums per allocation give what is spent and
    what is held; nothing is ever updated or deleted.
    """

    __tablename__ = "ledger"
    __table_args__ = (Index("ix_ledger_allocation", "allocation_id", "kind"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(8))
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"))
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    gpu_type: Mapped[str] = mapped_column(String(32))
    gpu_seconds: Mapped[int] = mapped_column(BigInteger)
    amount_won: Mapped[int] = mapped_column(BigInteger)
    public_won: Mapped[int] = mapped_column(BigInteger)
    copay_won: Mapped[int] = mapped_column(BigInteger)
    #: a charge's won at list price, before the program's modifiers (NULL: none recorded)
    list_won: Mapped[int | None] = mapped_column(BigInteger)
    #: the terms a charge was booked under, e.g. ``region:Gwangju -50%; self-paid 20%``
    terms: Mapped[str | None] = mapped_column(String(200))


#: an accrual entry's time is its watermark: one per job and moment (migration 0016)
Index(
    "ux_ledger_accrual",
    LedgerEntry.job_id,
    LedgerEntry.at,
    unique=True,
    sqlite_where=LedgerEntry.kind == literal_column("'accrual'"),
    postgresql_where=LedgerEntry.kind == literal_column("'accrual'"),
)


class AllocationBalance(Base):
    """Running sums of an allocation's ledger per GPU type, so that reading what is left
    costs one row per GPU type however long the ledger grows.

    ``held_*`` is holds minus releases, ``charged_*`` is charges. Kept by a database
    trigger on every insert into ``ledger`` (migration 0007), in the inserting
    transaction; code never writes it.
    """

    __tablename__ = "allocation_balances"
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"), primary_key=True)
    gpu_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    held_won: Mapped[int] = mapped_column(BigInteger)
    charged_won: Mapped[int] = mapped_column(BigInteger)
    held_gpu_seconds: Mapped[int] = mapped_column(BigInteger)
    charged_gpu_seconds: Mapped[int] = mapped_column(BigInteger)


class AuditEntry(Base):
    """An append-only record of a change to grants, quotas, prices or roles."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime]
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]]


class ProgramRule(Base):
    """A program's rules from ``effective_from`` on (``model.terms.ProgramRules`` as JSON):
    self-paid share, pricing modifiers, concentration caps, tranche plan. Added, never
    changed: the rules a charge or a grant was made under stay readable."""

    __tablename__ = "program_rules"
    __table_args__ = (UniqueConstraint("program_id", "effective_from"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    effective_from: Mapped[datetime]
    rules: Mapped[dict[str, Any]]
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GrantTranche(Base):
    """One part of a grant. ``status``: ``released`` (in the allocation's items),
    ``pending`` (released once its progress report is accepted; committed against the
    program's budget meanwhile) or ``withdrawn`` (taken back, returned to the budget).
    ``items``: ``{GPU type: [GPU-seconds, won]}``."""

    __tablename__ = "grant_tranches"
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    items: Mapped[dict[str, Any]]
    gpu_seconds: Mapped[int] = mapped_column(BigInteger)
    won: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    report_due_at: Mapped[datetime | None]
    released_at: Mapped[datetime | None]


class ProgressReport(Base):
    """A project's progress report asking for tranche ``tranche_seq`` of its grant:
    ``submitted``, then ``accepted`` (the tranche is released) or ``returned``."""

    __tablename__ = "progress_reports"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"), index=True)
    tranche_seq: Mapped[int]
    summary: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    submitted_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decision_comment: Mapped[str] = mapped_column(Text, default="", server_default="")


class SurveyForm(Base):
    """An outcome-survey form of a program: its fields (``model.surveys.Field`` as JSON),
    the dates every funded project answers it by, and whether each grant answers it once
    more after its end (``at_end``)."""

    __tablename__ = "survey_forms"
    __table_args__ = (UniqueConstraint("program_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    name: Mapped[str] = mapped_column(String(200))
    fields: Mapped[list[Any]]
    due_dates: Mapped[list[Any]]
    at_end: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SurveyAnswer(Base):
    """A project's answers to a form for one round (a due date, or ``final``). Append-only:
    a correction is a new row; the latest row of a round is the answer."""

    __tablename__ = "survey_answers"
    __table_args__ = (Index("ix_survey_answers_form_project", "form_id", "project_id", "round"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    form_id: Mapped[str] = mapped_column(ForeignKey("survey_forms.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    round: Mapped[str] = mapped_column(String(32))
    answers: Mapped[dict[str, Any]]
    submitted_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[datetime]


class GrantNotice(Base):
    """A notice sent about a grant: ``reminder`` (an overdue report or survey, named by
    ``subject``), ``warning``, ``suspension``, ``resumption`` or ``reclaim`` (``gpu_seconds``
    and ``won`` taken back), with the reason and the evidence it rests on."""

    __tablename__ = "grant_notices"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64), default="", server_default="")
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]]
    gpu_seconds: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    won: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime]


class Controller(Base):
    """The one row that fences controllers: each one that takes the store adds one to
    ``epoch``, and checks it before each of its writes (``Store.fence``, migration 0014)."""

    __tablename__ = "controller"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]
