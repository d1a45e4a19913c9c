"""The embedded local engine: jobs on this machine, each under a supervisor in a session of its own
(``supervisor.c``) so that they outlive the service (docs/engines.md)."""

from axcenter.executors.local.engine import Confinement, LocalEngine

__all__ = ["Confinement", "LocalEngine"]
