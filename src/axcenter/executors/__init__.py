"""Executors: make the control loop's decisions real and report what really happened.

``base`` holds the interface every backend implements; ``local`` runs jobs as local
subprocesses (on real or logical GPUs, see ``gpus``). Backends are imported from their own
modules so that importing this package stays cheap.
"""

from axcenter.executors.base import (
    Executor,
    ExitCallback,
    ExitReport,
    Launch,
    LaunchError,
    NodeInventory,
    Outcome,
    Started,
    StopReason,
)

__all__ = [
    "Executor",
    "ExitCallback",
    "ExitReport",
    "Launch",
    "LaunchError",
    "NodeInventory",
    "Outcome",
    "Started",
    "StopReason",
]
