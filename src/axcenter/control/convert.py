"""Rows of the store turned into the scheduler's values, and back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from axcenter.model.cluster import Allocation, Node, NodeState
from axcenter.model.snapshot import PendingJob, RunningJob
from axcenter.store import orm

__all__ = [
    "allocations_from_json",
    "allocations_to_json",
    "epoch",
    "node_from_row",
    "pending_from_row",
    "running_from_row",
    "utc",
]


def epoch(at: datetime) -> float:
    return at.timestamp()


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def node_from_row(row: orm.Node) -> Node:
    return Node(
        id=row.id,
        name=row.name,
        gpu_type=row.gpu_type,
        gpu_count=row.gpu_count,
        cpus=row.cpus,
        memory_mb=row.memory_mb,
        state=NodeState(row.state),
        logical=row.logical,
        rack=row.rack,
    )


def pending_from_row(row: orm.Job) -> PendingJob:
    return PendingJob(
        id=row.id,
        project_id=row.project_id,
        user_id=row.user_id,
        submitted_at=epoch(row.submitted_at),
        gpus_per_node=row.gpus_per_node,
        nodes=row.nodes,
        cpus_per_node=row.cpus_per_node,
        memory_mb_per_node=row.memory_mb_per_node,
        time_limit_s=row.time_limit_s,
        priority=row.priority,
        gpu_types=tuple(row.gpu_types),
        held=bool(row.held),
        dependent=bool(row.dependency_pending),
    )


def running_from_row(row: orm.Job) -> RunningJob:
    started = row.started_at or row.submitted_at
    return RunningJob(
        id=row.id,
        project_id=row.project_id,
        user_id=row.user_id,
        started_at=epoch(started),
        time_limit_s=row.time_limit_s,
        allocations=allocations_from_json(row.placement or []),
        priority=row.priority,
        gpu_type=row.gpu_type or "",
        borrowed=row.borrowed,
        last_checkpoint_at=epoch(row.last_checkpoint_at) if row.last_checkpoint_at else None,
    )


def allocations_to_json(placement: Sequence[Allocation]) -> list[dict[str, Any]]:
    return [
        {"node_id": a.node_id, "devices": list(a.devices), "cpus": a.cpus, "memory_mb": a.memory_mb}
        for a in placement
    ]


def allocations_from_json(data: Sequence[dict[str, Any]]) -> tuple[Allocation, ...]:
    return tuple(
        Allocation(
            node_id=a["node_id"],
            devices=tuple(a["devices"]),
            cpus=a["cpus"],
            memory_mb=a["memory_mb"],
        )
        for a in data
    )
