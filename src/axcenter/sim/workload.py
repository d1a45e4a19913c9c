"""The internal job table every trace reader produces and the engine replays.

One row per job: when it was submitted, how long it ran in the trace (failed and killed
jobs keep their recorded duration), its shape, its accepted GPU types, who submitted it
and for which tenant (a tenant becomes a project in the simulation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["TraceJob", "Workload"]


@dataclass(frozen=True, slots=True)
class TraceJob:
    id: str
    submit: float  # seconds since the trace start
    duration: float  # seconds it ran in the trace (> 0)
    gpus_per_node: int
    nodes: int = 1
    gpu_types: tuple[str, ...] = ()  # accepted types; empty = any
    user: str = ""
    tenant: str = "default"
    status: str = "completed"  # completed | failed | killed | unknown, as recorded
    time_limit: float | None = None  # seconds; None: the engine derives one
    priority: int = 0
    cpus_per_node: int = 1
    memory_mb_per_node: int = 1024

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes


@dataclass(frozen=True, slots=True)
class Workload:
    """A replayable trace: jobs sorted by submit time, plus how it was derived."""

    name: str
    jobs: Sequence[TraceJob]
    #: the rules a reader applied, printed with every result (e.g. how tenants were made)
    notes: tuple[str, ...] = ()
    #: guaranteed GPUs per tenant and GPU type, when the trace (or a rule) gives them
    quotas: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def tenants(self) -> list[str]:
        return sorted({j.tenant for j in self.jobs})
