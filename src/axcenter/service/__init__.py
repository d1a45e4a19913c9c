"""Use cases behind the adapters: submit, cancel, query, account set-up.

Routers and CLI commands stay thin and call these; the rules (validation against the
cluster, visibility, idempotency) live here once.
"""
