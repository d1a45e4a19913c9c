"""One settings object: defaults, then the environment (``AXC_*``), then flags.

Flags of ``axc up`` are applied by constructing ``Settings(**overrides)``; pydantic-settings
gives explicit arguments precedence over the environment.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AXC_", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="state: database, logs, job dirs")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is a SQLite file in data_dir. "
        "postgresql+psycopg://user@host/db selects PostgreSQL.",
    )
    database_schema: str | None = Field(
        default=None, description="PostgreSQL schema to use (search_path); default public"
    )
    config: Path | None = Field(
        default=None,
        description="the center's configuration file (node pools and their engines); "
        "without it, one local pool from local_gpus",
    )
    stop_jobs_on_shutdown: bool = Field(
        default=False,
        description="stop and requeue running jobs when the service stops; by default "
        "they keep running and are adopted at the next start",
    )
    run_dir: Path | None = Field(
        default=None,
        description="the local engine's run records (tmpfs, as /run: they live as long as "
        "the machine's processes do); default /dev/shm/axcenter-<hash of data_dir>",
    )

    # who jobs run as, and where (docs/security.md)
    identities: Literal["managed", "mapped", "single-user"] = Field(
        default="managed",
        description="managed: axcenter creates a unix account per user (and a group per "
        "project) in uid_range; mapped: only accounts an operator mapped (axc users map); "
        "single-user: every job runs as this service's own (non-root) account, and only "
        "the jobs of single_user are taken",
    )
    uid_range: str = Field(
        default="70000-79999",
        pattern=r"^\d+-\d+$",
        description="uids and gids of managed accounts and project groups, FIRST-LAST",
    )
    unix_prefix: str = Field(
        default="axc-",
        pattern=r"^[a-z_][a-z0-9_-]{0,15}$",
        description="the start of managed account and group names",
    )
    home_root: Path = Field(default=Path("/home"), description="managed accounts' homes")
    project_root: Path | None = Field(
        default=None, description="projects' shared directories (ROOT/PROJECT, group-owned)"
    )
    scratch_root: Path | None = Field(
        default=None, description="users' scratch directories (ROOT/ACCOUNT)"
    )
    single_user: str | None = Field(
        default=None, description="single-user mode: the axcenter user whose jobs run"
    )
    job_pids_max: int = Field(default=4096, ge=16, description="processes a job may have")
    log_max_bytes: int = Field(
        default=1 << 30, ge=0, description="what one run may write to its log; past it, it fails"
    )
    log_rotate_bytes: int = Field(
        default=64 << 20, ge=0, description="a job's log rotates at this size (0: never)"
    )
    log_keep: int = Field(default=4, ge=1, le=1000, description="rotated log files kept per job")
    attachment_max_bytes: int = Field(
        default=10 << 20,
        ge=1,
        le=15 << 20,  # below the API's body limit (api.guard.MAX_BODY_BYTES), with the form
        description="the largest file one may attach to an allocation request",
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server for e-mail notifications (none: no e-mail)"
    )
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = Field(default=False, description="STARTTLS before sending")
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = Field(default="axcenter@localhost", description="the notices' sender")
    mail_every_s: float = Field(
        default=60.0, gt=0, description="how often e-mail notices are looked for and sent"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    local_gpus: str | None = Field(
        default=None,
        description="logical GPUs as TYPE:GPUS[xNODES],... (e.g. A100:4,H100:4); "
        "default: the real NVIDIA GPUs if any, else H100:8",
    )
    node_cpus: int | None = Field(default=None, ge=1, description="CPUs per local node")
    node_memory_mb: int | None = Field(default=None, ge=1, description="memory per local node")
    default_time_limit_s: int = Field(default=3600, ge=1)
    max_time_limit_s: int = Field(default=7 * 24 * 3600, ge=1)
    kill_grace_s: float = Field(
        default=10.0, ge=0, description="SIGTERM to SIGKILL grace period for stops"
    )
    safety_cycle_s: float = Field(
        default=5.0, gt=0, description="the loop also runs this often with no event"
    )
    stage_ahead_s: float = Field(
        default=120.0,
        ge=0,
        description="on engines that can (Slurm), hand a waiting job over ahead, to start "
        "on the devices of a job expected to end within this many seconds as soon as it "
        "ends (docs/engines.md, staged runs); 0: never",
    )

    # scheduling policy (docs/scheduling.md)
    sched_backfill: bool = True
    sched_bf_max_job_test: int = Field(default=500, ge=1)
    #: blocked jobs that get a backfill reservation each cycle (1: EASY backfill)
    sched_bf_reservations: int = Field(default=8, ge=1)
    sched_preemption: bool = True
    sched_min_runtime_s: float = Field(default=120.0, ge=0)
    sched_intra_project_preemption: bool = False
    sched_age_weight: float = Field(default=0.25, ge=0)
    sched_max_age_s: float = Field(default=7 * 86400.0, gt=0)
    #: reclaim only when victims lose at most this times what the reclaimer gains (inf: always)
    sched_reclaim_loss_ratio: float = Field(default=1.0, gt=0)
    fair_share_half_life_s: float = Field(default=7 * 86400.0, gt=0)
    sched_usage_weights: str = Field(
        default="",
        description="what a GPU-second of each type weighs in fair share, as TYPE=WEIGHT "
        "pairs separated by commas (H100=2.5,A100=1; a type not named weighs 1); empty: "
        "each type's price in the price book relative to the cheapest (usage in won)",
    )
    sched_history_min_runs: int = Field(
        default=3,
        ge=0,
        description="succeeded runs of similar jobs (same user, project, time limit) "
        "before their run times tighten what the scheduler expects of the next ones, for "
        "queue order and backfill only (never to end a run); 0: requested limits only",
    )
    sched_wide_within_guarantee: bool = Field(
        default=True,
        description="a single-node job that needs a whole node and that its project's "
        "nominal quota could hold (the project not borrowing that type) is ordered with guaranteed "
        "work even when the project's own running jobs leave too little of the "
        "guarantee for it now; false: it is borrowing work until they end",
    )
    unallocated_gpu_jobs: Literal["free", "refuse"] = Field(
        default="free",
        description="GPU jobs of a project without an active allocation: free (they run "
        "without charge, on the project's quota if an operator set one, else on idle GPUs "
        "as preemptible borrowers) or refuse (refused at submission; one already waiting "
        "waits, reason budget, until an allocation covers it). CPU-only jobs always run",
    )
    max_running_jobs_per_user: int | None = Field(default=None, ge=1)
    max_gpus_per_user: int | None = Field(default=None, ge=1)

    # abuse limits (docs/security.md)
    auth_failures_per_minute: int = Field(
        default=20,
        ge=1,
        description="failed authentications per client address, and per token prefix, "
        "after which every attempt with it is refused (429) until a minute has passed",
    )
    max_pending_jobs_per_user: int | None = Field(default=20_000, ge=1)
    max_pending_jobs_per_project: int | None = Field(default=50_000, ge=1)
    max_submissions_per_s_per_user: float | None = Field(
        default=100.0, gt=0, description="submission requests per second (a batch is one)"
    )
    max_submissions_per_s_per_project: float | None = Field(default=200.0, gt=0)
    web_session_lifetime_s: int = Field(
        default=8 * 3600, ge=60, description="how long a dashboard sign-in lasts"
    )
    http_keep_alive_s: int = Field(
        default=5, ge=1, description="an idle kept-alive connection is closed after this"
    )
    http_body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="a request whose body stops arriving for this long is ended (408)",
    )
    http_max_connections: int = Field(
        default=2048, ge=1, description="connections served at once; more are answered 503"
    )

    time_zone: str = Field(
        default="Asia/Seoul",
        description="IANA time zone the dashboard shows times in (stored times stay UTC)",
    )

    # money as it accrues (docs/accounting.md, "Accrual")
    accrual_period: str = Field(
        default="hour",
        pattern=r"^(hour|day|off|[1-9][0-9]{0,6}s)$",
        description="running jobs are charged as they run at the end of each hour or day "
        "of time_zone (a program's rules may name another), or every N seconds (Ns: tests "
        "and demonstrations); off: only when they end",
    )
    accrual_lag_s: float = Field(
        default=60.0,
        ge=0,
        description="a period is accrued this long after its end, when the engines have "
        "reported the runs that ended before it",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name such as Asia/Seoul)"
            ) from exc
        return value

    @field_validator("sched_usage_weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        parse_weights(value)
        return value

    @property
    def usage_weights(self) -> dict[str, float]:
        return parse_weights(self.sched_usage_weights)

    @property
    def uids(self) -> range:
        first, last = (int(part) for part in self.uid_range.split("-"))
        return range(first, last + 1)

    @field_validator("uid_range")
    @classmethod
    def _sane_range(cls, value: str) -> str:
        first, last = (int(part) for part in value.split("-"))
        if not 1000 <= first <= last < 2**31 - 1:
            raise ValueError(f"uid range {value}: FIRST-LAST with 1000 <= FIRST <= LAST")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'axcenter.db').resolve()}"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def instance_digest(self) -> str:
        """A short name of this center on its host (from its data directory): its run
        records' directory and its jobs' control groups are named by it."""
        return hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:12]

    @property
    def engine_dir(self) -> Path:
        """The local engine's run records (docs/engines.md): in memory, as conmon keeps
        its exit files under /run. They outlive the service, not the machine, whose
        reboot ends their jobs too; creating and removing a few files per job on a disk
        cost as much as the rest of a job's start and end together (journalled metadata)."""
        if self.run_dir is not None:
            return self.run_dir
        digest = self.instance_digest
        # shared tmpfs: the engine refuses the directory unless it is its own (0700)
        return Path("/dev/shm") / f"axcenter-{digest}"  # noqa: S108

    @property
    def first_tokens_file(self) -> Path:
        """Where ``axc up`` writes the tokens it issues at first start (mode 0600)."""
        return self.data_dir / "first-start-tokens"

    @property
    def attachments_dir(self) -> Path:
        """Files attached to allocation requests (``service.attachments``)."""
        return self.data_dir / "attachments"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"


def parse_weights(text: str) -> dict[str, float]:
    """``H100=2.5,A100=1`` as {GPU type: weight}; a clear error naming the bad pair."""
    weights: dict[str, float] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        gpu_type, sep, number = pair.partition("=")
        try:
            weight = float(number) if sep and gpu_type.strip() else math.nan
        except ValueError:
            weight = math.nan
        if not weight > 0 or math.isinf(weight):
            raise ValueError(
                f"usage weight {pair!r}: write TYPE=WEIGHT with a positive number (H100=2.5)"
            )
        weights[gpu_type.strip()] = weight
    return weights
