"""The center: settings, store, executor and control loop wired together.

``axc up`` builds one ``Center``, starts it, and serves the API on top of it. Tests build
one with a temporary data directory and a PostgreSQL or SQLite store.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from sqlalchemy import text

from axcenter import sched
from axcenter.control.accrue import Accruer
from axcenter.control.estimates import Estimator
from axcenter.control.live import LiveState
from axcenter.control.loop import ControlLoop
from axcenter.control.metrics import LoopMetrics
from axcenter.control.watch import JobWatch
from axcenter.executors.base import Engine, EngineFactory, EventCallback, NodeInventory
from axcenter.executors.fake import FakeEngine
from axcenter.executors.gpus import local_inventory
from axcenter.executors.local import Confinement, LocalEngine
from axcenter.executors.logs import LogPolicy
from axcenter.executors.pools import PoolConfig, Pools, load_config
from axcenter.executors.slurm import slurm_engine
from axcenter.model.snapshot import Limits, SchedulerConfig, Snapshot
from axcenter.service.dependencies import DependencyResolver
from axcenter.service.identities import ensure_waiting_identities
from axcenter.service.live import LiveHub
from axcenter.service.mail import Mailer
from axcenter.service.obligations import Reminders
from axcenter.service.signin import load_sign_in
from axcenter.service.sso import SingleSignOn
from axcenter.service.steps import end_orphans
from axcenter.service.throttle import FailureLimiter, SubmissionLimits, SubmissionThrottle
from axcenter.settings import Settings
from axcenter.sim.forecast import forecast
from axcenter.store.db import AnotherController, Fenced, Store, unavailable
from axcenter.store.group_commit import GroupCommit

__all__ = ["AnotherController", "Center", "Fenced", "Readiness"]

log = logging.getLogger(__name__)

#: seconds past the kill grace a run may take to be reported (held with every job)
HOLD_SLACK_S = 5

#: logical nodes get this much per GPU unless told otherwise (they are not real hardware)
LOGICAL_CPUS_PER_GPU = 8
LOGICAL_MEMORY_MB_PER_GPU = 64 * 1024

#: a standby that could not take over (the store away meanwhile) tries again this often
TAKEOVER_RETRY_S = 1.0

#: after a takeover, the cache is rebuilt from the store once more this much later: by
#: then the fenced controller's lock keeper has stopped it (``store.db.KEEP_CONTROL_S``)
REBUILD_AFTER_TAKEOVER_S = 3.0

#: below this much free space on the data directory's disk (SQLite) the center is not
#: ready: the next commits may fail
MIN_FREE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the center can take work now, and each check's verdict in words."""

    ready: bool
    checks: dict[str, str]


def scheduler_config(settings: Settings) -> SchedulerConfig:
    return SchedulerConfig(
        backfill=settings.sched_backfill,
        bf_max_job_test=settings.sched_bf_max_job_test,
        bf_reservations=settings.sched_bf_reservations,
        preemption=settings.sched_preemption,
        min_runtime_s=settings.sched_min_runtime_s,
        intra_project_preemption=settings.sched_intra_project_preemption,
        age_weight=settings.sched_age_weight,
        max_age_s=settings.sched_max_age_s,
        reclaim_loss_ratio=settings.sched_reclaim_loss_ratio,
        fair_share_half_life_s=settings.fair_share_half_life_s,
        usage_weights=tuple(sorted(settings.usage_weights.items())),
        history_min_runs=settings.sched_history_min_runs,
        wide_within_guarantee=settings.sched_wide_within_guarantee,
        run_unallocated=settings.unallocated_gpu_jobs == "free",
    )


def _size_logical(node: NodeInventory, cpus: int | None, memory_mb: int | None) -> NodeInventory:
    """Give logical nodes CPUs and memory in proportion to their GPUs, unless configured.

    Logical nodes exist for scheduling only; sizing them from this host (2 cores, say)
    would let CPU requests, not GPUs, limit how many jobs run.
    """
    if not node.logical:
        return node
    return replace(
        node,
        cpus=cpus or node.gpu_count * LOGICAL_CPUS_PER_GPU,
        memory_mb=memory_mb or node.gpu_count * LOGICAL_MEMORY_MB_PER_GPU,
    )


class Center:
    """``engine_factory`` replaces the engines of the configuration (tests)."""

    def __init__(self, settings: Settings, engine_factory: EngineFactory | None = None) -> None:
        self.settings = settings
        # the center's state is the service's alone: no job, whoever it runs as, reads
        # the database, the logs of others or the run records (docs/security.md)
        for path in (
            settings.data_dir,
            settings.logs_dir,
            settings.jobs_dir,
            settings.attachments_dir,
        ):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)
        #: the node pools (``--config``), validated before anything starts
        config = load_config(settings.config) if settings.config is not None else None
        self.pools = (
            config.pools
            if config is not None
            else [PoolConfig(name="local", engine="local", gpus=settings.local_gpus)]
        )
        #: how people sign in to the dashboard (the file's ``sign_in:``)
        self.sign_in = load_sign_in(config.sign_in if config else None, str(settings.config))
        #: the OpenID provider, when single sign-on is configured
        self.sso = SingleSignOn(self.sign_in.oidc) if self.sign_in.oidc is not None else None
        self.store = Store(settings.resolved_database_url, settings.database_schema)
        #: submissions are committed through it, a burst in one transaction
        self.writes = GroupCommit(self.store)
        self.watch = JobWatch()
        #: Prometheus metrics (``/metrics``) and the loop's health (``/readyz``)
        self.metrics = LoopMetrics()
        #: what changed, for live pages (``control/live.py``)
        self.live = LiveState()
        self.control = ControlLoop(
            self.store,
            engine_factory or self._engines,
            sched.plan,
            kill_grace_s=settings.kill_grace_s,
            safety_cycle_s=settings.safety_cycle_s,
            stage_ahead_s=settings.stage_ahead_s,
            config=scheduler_config(settings),
            user_limits=Limits(settings.max_running_jobs_per_user, settings.max_gpus_per_user),
            hold_grace_s=math.ceil(settings.kill_grace_s) + HOLD_SLACK_S,
            watch=self.watch,
            metrics=self.metrics,
            live=self.live,
        )
        #: the dashboard's open streams, woken by the changes they show (``service/live.py``)
        self.live_hub = LiveHub(self.live)
        #: every pending job's estimated start, off the loop (``control/estimates.py``)
        self.estimates = Estimator(self.control.view, self._forecast, self.live)
        self.metrics.watch_queue(
            lambda: len(self.control.state.pending), lambda: len(self.control.state.running)
        )
        #: lets jobs submitted with --dependency go when what they wait for has ended
        self.dependencies = DependencyResolver(self.store, self.control)
        self.watch.add_listener(self.dependencies.ended)
        #: abuse limits (``service.throttle``): failed authentications, submissions
        self.auth_failures = FailureLimiter(settings.auth_failures_per_minute)
        self.throttle = SubmissionThrottle(
            SubmissionLimits(
                pending_per_user=settings.max_pending_jobs_per_user,
                pending_per_project=settings.max_pending_jobs_per_project,
                per_s_per_user=settings.max_submissions_per_s_per_user,
                per_s_per_project=settings.max_submissions_per_s_per_project,
            ),
            self._pending_of,
        )
        #: reminds grants of overdue progress reports and surveys, hourly
        self.reminders = Reminders(self)
        #: charges running jobs as they run, at the end of each accrual period
        self.accruer = Accruer(
            self.store,
            period=settings.accrual_period,
            zone=settings.zone,
            lag_s=settings.accrual_lag_s,
        )
        #: e-mail notices (``service.mail``): started only when an SMTP server is set
        self.mailer = Mailer(self)
        #: a standby serves reads only, until it holds the store (``start(standby=True)``)
        self.standby = False
        #: this center controls the store (its loop, writes and resolver run)
        self.active = False
        self._stopping = threading.Event()
        self._standby_thread: threading.Thread | None = None
        #: told when this center, or the standby it was, became the active controller
        self.on_active: Callable[[], None] = lambda: None
        #: told when another controller took the store from this one (``axc up`` exits)
        self.on_fenced: Callable[[], None] = lambda: None
        self.store.on_fenced(self._fenced)

    def _pending_of(self, user_id: str, project_ids: Iterable[str]) -> tuple[int, dict[str, int]]:
        """Pending jobs of a user, and of each project, as the control loop knows them."""
        state = self.control.state
        queues = state.queues
        return state.pending_users.get(user_id, 0), {
            p: len(queues.get(p) or ()) for p in project_ids
        }

    def _forecast(
        self, snapshot: Snapshot, now: float, stop: Callable[[], bool]
    ) -> Mapping[str, float]:
        """The scheduler run forward over the queue (``sim/forecast.py``)."""
        grace = self.settings.kill_grace_s
        return forecast(snapshot, now, sched.plan, grace_s=grace, should_stop=stop).starts

    def _fenced(self) -> None:
        self.on_fenced()  # looked up now: ``axc up`` sets it after construction

    def _engines(self, on_event: EventCallback) -> Engine:
        """The engine of each pool; one pool's engine alone when there is one."""
        if len(self.pools) == 1:
            return self._engine(self.pools[0], on_event)
        return Pools(
            {pool.name: functools.partial(self._engine, pool) for pool in self.pools}, on_event
        )

    def _engine(self, pool: PoolConfig, on_event: EventCallback) -> Engine:
        if pool.slurm is not None:  # its records on disk: Slurm's jobs outlive this machine
            return slurm_engine(
                pool.slurm,
                on_event,
                state_dir=self.settings.data_dir / f"slurm-{pool.name}",
                logs_dir=self.settings.logs_dir,
                grace_s=self.settings.kill_grace_s,
            )
        cpus = pool.cpus_per_node or self.settings.node_cpus
        memory = pool.memory_mb_per_node or self.settings.node_memory_mb
        prefix = "local" if len(self.pools) == 1 else pool.name
        nodes = [
            _size_logical(n, cpus, memory) for n in local_inventory(pool.gpus, cpus, memory, prefix)
        ]
        if pool.engine == "fake":
            return FakeEngine(nodes, on_event, name=pool.name)
        state_dir = self.settings.engine_dir
        if len(self.pools) > 1:
            state_dir = state_dir.with_name(f"{state_dir.name}-{pool.name}")
        return LocalEngine(
            nodes,
            on_event,
            state_dir=state_dir,
            logs_dir=self.settings.logs_dir,
            grace_s=self.settings.kill_grace_s,
            confinement=self._confinement(),
            log=LogPolicy(
                self.settings.log_max_bytes, self.settings.log_rotate_bytes, self.settings.log_keep
            ),
        )

    def _confinement(self) -> Confinement | None:
        """How local runs are confined: fully when this service may switch identities
        (root), not at all in single-user mode."""
        if self.settings.identities == "single-user":
            return None
        return Confinement(
            cgroup_parent=f"axcenter/{self.settings.instance_digest}",
            pids_max=self.settings.job_pids_max,
            private_proc=_per_mount_proc(),
        )

    def _check_identities(self) -> None:
        """Refuse to start where jobs could run as root, or as anyone's but their own."""
        settings = self.settings
        runs_jobs = any(pool.engine != "fake" for pool in self.pools)
        if settings.identities == "single-user":
            if not settings.single_user:
                raise ValueError(
                    "single-user mode needs the axcenter user whose jobs run "
                    "(--single-user NAME or AXC_SINGLE_USER)"
                )
            if runs_jobs and os.geteuid() == 0:
                raise ValueError(
                    "single-user mode runs every job as this service's account, which is "
                    "root: run the service as an unprivileged account, or use managed "
                    "identities"
                )
            return
        if runs_jobs and os.geteuid() != 0:
            raise ValueError(
                f"this service runs as uid {os.geteuid()} and cannot switch identities, so "
                f"it cannot run the jobs of several users apart: run it as root, or start "
                f"it in single-user mode (--identities single-user --single-user NAME)"
            )
        if settings.identities == "managed":
            for root in (settings.home_root, settings.project_root, settings.scratch_root):
                if root is not None:
                    root.mkdir(mode=0o755, parents=True, exist_ok=True)

    @property
    def single_user(self) -> str | None:
        """The only user whose jobs run here, in single-user mode (shown to all)."""
        return self.settings.single_user if self.settings.identities == "single-user" else None

    def start(self, *, standby: bool = False) -> None:
        """Claim the store (one controller per store: ``AnotherController`` otherwise),
        bring its schema up to date, take the next fencing epoch, then adopt what the
        engines run and start cycling.

        ``standby``: return at once and serve reads; a thread waits for the controller
        lock and, once the active center is gone, takes over as above: its engines adopt
        the runs the other left (nothing is stopped), its loop rebuilds from the store."""
        self._check_identities()
        if not standby:
            self.store.claim_control()
            self._take_over()
            return
        self.standby = True
        self._standby_thread = threading.Thread(
            target=self._wait_to_take_over, name="axc-standby", daemon=True
        )
        self._standby_thread.start()

    def _take_over(self) -> None:
        self.store.migrate()
        self.store.protect_files()
        if made := ensure_waiting_identities(self):
            log.info("made the unix identities of %d user(s) with waiting jobs", made)
        if self.store.trusts_other_roles():
            log.warning(
                "PostgreSQL accepts a login without password for another role: any job on "
                "this machine could write to the database. Require scram-sha-256 (or peer) "
                "in pg_hba.conf (docs/security.md)"
            )
        self.store.take_epoch()
        if lost := end_orphans(self):
            log.warning("%d step(s) ended with the service that ran them: recorded lost", lost)
        if not self.active:
            self.writes.start()
        self.active = True
        self.control.start()
        self.estimates.start()
        self.dependencies.start()
        self.reminders.start()
        self.accruer.start()
        self.mailer.start()
        self.standby = False

    def _wait_to_take_over(self) -> None:
        if not self.store.claim_control(wait=self._stopping):
            return
        log.warning("standby: the controller lock is ours; taking over")
        while not self._stopping.is_set():
            try:
                self._take_over()
            except Exception:  # the store away meanwhile: the lock is held, try again
                log.exception("standby: taking over failed; trying again")
                self._stopping.wait(TAKEOVER_RETRY_S)
                continue
            log.warning("standby: this center is now the active controller")
            # a fenced controller may have committed a submission (PostgreSQL's one-
            # statement path is not fenced) before it knew: once it surely knows, look
            rebuild = threading.Timer(REBUILD_AFTER_TAKEOVER_S, self.control.rebuild)
            rebuild.daemon = True
            rebuild.start()
            self.on_active()
            return

    def readiness(self) -> Readiness:
        """Ready: the store answers (and, on SQLite, its disk has room), the control loop
        completed a cycle lately (its timer cycles at least every ``safety_cycle_s``),
        and no engine call failed since the last one that succeeded."""
        checks: dict[str, str] = {}
        ok = True
        try:
            with self.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["store"] = "ok"
        except Exception as exc:
            ok = False
            checks["store"] = unavailable(exc) or f"error: {type(exc).__name__}"
            self.metrics.store_errors.labels("readyz").inc()
        if self.store.is_sqlite:
            free = shutil.disk_usage(self.settings.data_dir).free
            if free < MIN_FREE_BYTES:
                ok = False
                checks["disk"] = f"{free // 1024} KiB free on the data directory's disk"
            else:
                checks["disk"] = "ok"
        if self.standby:
            ok = False
            checks["control"] = "standby: waiting for the active center's lock"
            return Readiness(ok, checks)
        health = self.metrics.health
        max_age = max(15.0, 3 * self.settings.safety_cycle_s)
        if not health.cycled_at:
            ok = False
            checks["control"] = "no cycle yet"
        elif (age := time.monotonic() - health.cycled_at) > max_age:
            ok = False
            failing = " (its cycles fail)" if health.failing_since else ""
            checks["control"] = f"last cycle {age:.0f} s ago{failing}"
        else:
            checks["control"] = "ok"
        if health.engine_healthy:
            checks["engine"] = "ok"
        else:
            ok = False
            checks["engine"] = "its latest call failed"
        return Readiness(ok, checks)

    def stop(self) -> None:
        """Stop serving; running jobs go on under the engine (and are adopted at the next
        start) unless the operator chose ``stop_jobs_on_shutdown``. A standby that never
        took over stops nothing; a fenced center leaves its runs to the new one."""
        self._stopping.set()
        if self._standby_thread is not None:
            self._standby_thread.join()
        self.reminders.stop()
        self.mailer.stop()
        if not self.active:
            self.control.engine.close(stop_runs=False)
            self.store.dispose()
            return
        self.dependencies.stop()
        self.estimates.stop()
        self.accruer.stop()
        self.writes.close()
        self.control.stop(stop_jobs=self.settings.stop_jobs_on_shutdown)
        self.store.dispose()


def _per_mount_proc() -> bool:
    """Whether each mount of /proc has options of its own (Linux 5.8): only then may a
    job get a /proc that hides other users' processes without changing the host's."""
    release = os.uname().release.split(".")
    try:
        return (int(release[0]), int(release[1].split("-")[0])) >= (5, 8)
    except (IndexError, ValueError):
        return False
