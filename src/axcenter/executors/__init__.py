"""Engines: make the control loop's decisions real and report what really happened.

``base`` holds the execution contract every engine implements (docs/engines.md);
``local`` runs jobs on this machine under per-run supervisors (on real or logical GPUs,
see ``gpus``); ``fake`` is an engine for tests that runs nothing and does what it is told;
``pools`` puts several engines behind one contract (the center's node pools). Engines are
imported from their own modules so that importing this package stays cheap.
"""

from axcenter.executors.base import (
    Engine,
    EngineEvent,
    EngineFactory,
    EventCallback,
    LaunchError,
    NodeInventory,
    NodesChanged,
    Outcome,
    Recovery,
    RunEnded,
    RunSpec,
    RunStarted,
    StopReason,
)

__all__ = [
    "Engine",
    "EngineEvent",
    "EngineFactory",
    "EventCallback",
    "LaunchError",
    "NodeInventory",
    "NodesChanged",
    "Outcome",
    "Recovery",
    "RunEnded",
    "RunSpec",
    "RunStarted",
    "StopReason",
]
