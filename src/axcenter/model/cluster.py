"""Nodes and device allocations as the scheduler sees them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Allocation", "Node", "NodeState"]


class NodeState(StrEnum):
    UP = "up"
    DRAIN = "drain"  # running jobs finish; nothing new is placed
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Node:
    """A machine with ``gpu_count`` devices of one GPU type, numbered 0..gpu_count-1."""

    id: str
    name: str
    gpu_type: str
    gpu_count: int
    cpus: int
    memory_mb: int
    state: NodeState = NodeState.UP
    logical: bool = False  # devices are logical (no real GPU behind them)
    rack: str = ""

    @property
    def schedulable(self) -> bool:
        return self.state is NodeState.UP


@dataclass(frozen=True, slots=True)
class Allocation:
    """What one job holds on one node."""

    node_id: str
    devices: tuple[int, ...]
    cpus: int
    memory_mb: int
