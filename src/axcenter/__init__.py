"""axcenter: the operating platform of a shared AI computing center.

Layers (docs/ARCHITECTURE.md): ``model`` <- ``sched`` <- ``control`` -> ``store``,
``executors``; ``service`` holds the use cases; adapters (api, cli, client) sit on top.
"""

__version__ = "0.1.0"
