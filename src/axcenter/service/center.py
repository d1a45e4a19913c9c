"""The center: settings, store, executor and control loop wired together.

``axc up`` builds one ``Center``, starts it, and serves the API on top of it. Tests build
one with a temporary data directory and a PostgreSQL or SQLite store.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace

from axcenter import sched
from axcenter.control.loop import ControlLoop
from axcenter.control.watch import JobWatch
from axcenter.executors.base import Executor, ExitReport, NodeInventory
from axcenter.executors.gpus import local_inventory
from axcenter.executors.local import LocalExecutor
from axcenter.model.snapshot import Limits, SchedulerConfig
from axcenter.settings import Settings
from axcenter.store.db import Store
from axcenter.store.group_commit import GroupCommit

__all__ = ["Center"]

log = logging.getLogger(__name__)

ExecutorFactory = Callable[[Callable[[ExitReport], None]], Executor]

#: seconds past the kill grace a run may take to be reported (held with every job)
HOLD_SLACK_S = 5

#: logical nodes get this much per GPU unless told otherwise (they are not real hardware)
LOGICAL_CPUS_PER_GPU = 8
LOGICAL_MEMORY_MB_PER_GPU = 64 * 1024


def scheduler_config(settings: Settings) -> SchedulerConfig:
    return SchedulerConfig(
        backfill=settings.sched_backfill,
        bf_max_job_test=settings.sched_bf_max_job_test,
        preemption=settings.sched_preemption,
        min_runtime_s=settings.sched_min_runtime_s,
        intra_project_preemption=settings.sched_intra_project_preemption,
        age_weight=settings.sched_age_weight,
        max_age_s=settings.sched_max_age_s,
        reclaim_loss_ratio=settings.sched_reclaim_loss_ratio,
        fair_share_half_life_s=settings.fair_share_half_life_s,
    )


def _size_logical(node: NodeInventory, settings: Settings) -> NodeInventory:
    """Give logical nodes CPUs and memory in proportion to their GPUs, unless configured.

    Logical nodes exist for scheduling only; sizing them from this host (2 cores, say)
    would let CPU requests, not GPUs, limit how many jobs run.
    """
    if not node.logical:
        return node
    return replace(
        node,
        cpus=settings.node_cpus or node.gpu_count * LOGICAL_CPUS_PER_GPU,
        memory_mb=settings.node_memory_mb or node.gpu_count * LOGICAL_MEMORY_MB_PER_GPU,
    )


class Center:
    def __init__(self, settings: Settings, executor_factory: ExecutorFactory | None = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.resolved_database_url, settings.database_schema)
        #: submissions are committed through it, a burst in one transaction
        self.writes = GroupCommit(self.store)
        self.watch = JobWatch()
        self.control = ControlLoop(
            self.store,
            executor_factory or self._local_executor,
            sched.plan,
            logs_dir=settings.logs_dir,
            kill_grace_s=settings.kill_grace_s,
            safety_cycle_s=settings.safety_cycle_s,
            config=scheduler_config(settings),
            user_limits=Limits(settings.max_running_jobs_per_user, settings.max_gpus_per_user),
            hold_grace_s=math.ceil(settings.kill_grace_s) + HOLD_SLACK_S,
            watch=self.watch,
        )

    def _local_executor(self, on_exit: Callable[[ExitReport], None]) -> Executor:
        nodes = local_inventory(
            self.settings.local_gpus, self.settings.node_cpus, self.settings.node_memory_mb
        )
        nodes = [_size_logical(n, self.settings) for n in nodes]
        return LocalExecutor(nodes, on_exit, grace_s=self.settings.kill_grace_s)

    def start(self) -> None:
        self.store.migrate()
        self.writes.start()
        self.control.start()

    def stop(self) -> None:
        self.writes.close()
        self.control.stop()
        self.store.dispose()
