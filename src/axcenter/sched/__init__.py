"""Scheduling policy: ``plan(snapshot, now) -> Plan``, a pure function.

The same function drives the live control loop and the simulator. It reads only the
snapshot it is given: no I/O, no clock, no randomness.
"""

from axcenter.sched.plan import plan

__all__ = ["plan"]
