"""``axc backup`` and ``axc restore``: the center's store to a file and back
(``store/backup.py``), opened from the settings alone, as ``axc up`` would open it."""

from __future__ import annotations

from pathlib import Path

from axcenter.settings import Settings
from axcenter.store.backup import BackupError
from axcenter.store.backup import backup as _backup
from axcenter.store.backup import restore as _restore
from axcenter.store.db import AnotherController, Store

__all__ = ["AnotherController", "BackupError", "backup", "restore"]


def backup(settings: Settings, dest: Path) -> None:
    """Back up the store of ``settings`` to ``dest``, while the center runs or not."""
    store = Store(settings.resolved_database_url, settings.database_schema)
    try:
        _backup(store, dest)
    finally:
        store.dispose()


def restore(settings: Settings, src: Path) -> None:
    """Restore ``src`` into the (empty) store of ``settings``; ``axc up`` on those
    settings then starts the restored center (migrating it if the backup is older)."""
    store = Store(settings.resolved_database_url, settings.database_schema)
    try:
        _restore(store, src)
    finally:
        store.dispose()
