"""Python client of the axcenter API: ``Client`` for requests, ``config`` for credentials.

Example::

    from axcenter.client import Client, resolve

    cfg = resolve()  # explicit args, then AXC_URL/AXC_TOKEN, then ~/.config/axcenter
    with Client(cfg.url, cfg.token) as axc:
        job = axc.submit_job(command=["python", "train.py"], gpus_per_node=2)
        print(axc.wait_job(job["id"])["state"])
"""

from axcenter.client.config import Config, ConfigError, config_path, resolve
from axcenter.client.http import TERMINAL_STATES, ApiError, Client

__all__ = [
    "TERMINAL_STATES",
    "ApiError",
    "Client",
    "Config",
    "ConfigError",
    "config_path",
    "resolve",
]
