"""The cluster as a caller may see it: every node and device; holders only where visible."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from axcenter.model.access import Principal
from axcenter.model.jobs import JobState
from axcenter.service.access import visible_jobs
from axcenter.service.schemas import ClusterOut, DeviceOut, NodeOut, SummaryOut
from axcenter.store import orm

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["HIDDEN", "cluster_view"]

#: shown instead of the user and project of a device held by another tenant
HIDDEN = "(other tenant)"


def cluster_view(center: Center, who: Principal) -> ClusterOut:
    with center.store.read() as session:
        nodes = session.scalars(select(orm.Node).order_by(orm.Node.name)).all()
        leases = session.execute(
            select(
                orm.DeviceLease.node_id,
                orm.DeviceLease.device_index,
                orm.Job.id,
                orm.User.name,
                orm.Project.name,
                visible_jobs(who),
            )
            .join(orm.Job, orm.Job.id == orm.DeviceLease.job_id)
            .join(orm.User, orm.User.id == orm.Job.user_id)
            .join(orm.Project, orm.Project.id == orm.Job.project_id)
        ).all()
        counts: dict[str, int] = {
            state: count
            for state, count in session.execute(
                select(orm.Job.state, func.count())
                .where(orm.Job.state.in_([JobState.PENDING.value, JobState.RUNNING.value]))
                .group_by(orm.Job.state)
            ).tuples()
        }
    held = {
        (node_id, index): (job, user, project, bool(visible))
        for node_id, index, job, user, project, visible in leases
    }
    out_nodes = []
    for node in nodes:
        devices = []
        for index in range(node.gpu_count):
            holder = held.get((node.id, index))
            if holder is None:
                devices.append(
                    DeviceOut(index=index, busy=False, job_id=None, user=None, project=None)
                )
            elif holder[3]:
                devices.append(
                    DeviceOut(
                        index=index, busy=True, job_id=holder[0], user=holder[1], project=holder[2]
                    )
                )
            else:
                devices.append(
                    DeviceOut(index=index, busy=True, job_id=None, user=HIDDEN, project=HIDDEN)
                )
        out_nodes.append(
            NodeOut(
                id=node.id,
                name=node.name,
                gpu_type=node.gpu_type,
                gpu_count=node.gpu_count,
                logical=node.logical,
                state=node.state,
                cpus=node.cpus,
                memory_mb=node.memory_mb,
                devices=devices,
            )
        )
    return ClusterOut(
        nodes=out_nodes,
        summary=SummaryOut(
            gpus=sum(n.gpu_count for n in nodes),
            gpus_used=len(held),
            pending_jobs=counts.get(JobState.PENDING.value, 0),
            running_jobs=counts.get(JobState.RUNNING.value, 0),
            identities=center.settings.identities,
            single_user=center.single_user,
        ),
    )
