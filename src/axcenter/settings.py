"""One settings object: defaults, then the environment (``AXC_*``), then flags.

Flags of ``axc up`` are applied by constructing ``Settings(**overrides)``; pydantic-settings
gives explicit arguments precedence over the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
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

    # scheduling policy (docs/scheduling.md)
    sched_backfill: bool = True
    sched_bf_max_job_test: int = Field(default=500, ge=1)
    sched_preemption: bool = True
    sched_min_runtime_s: float = Field(default=120.0, ge=0)
    sched_intra_project_preemption: bool = False
    sched_age_weight: float = Field(default=0.25, ge=0)
    sched_max_age_s: float = Field(default=7 * 86400.0, gt=0)
    #: reclaim only when victims lose at most this times what the reclaimer gains (inf: always)
    sched_reclaim_loss_ratio: float = Field(default=1.0, gt=0)
    fair_share_half_life_s: float = Field(default=7 * 86400.0, gt=0)
    max_running_jobs_per_user: int | None = Field(default=None, ge=1)
    max_gpus_per_user: int | None = Field(default=None, ge=1)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'axcenter.db').resolve()}"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"
