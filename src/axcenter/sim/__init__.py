"""Simulation: replay traces through the live scheduler (``sched.plan``) on an event clock.

Used to judge a policy change or a purchase on history before it goes live.
"""
