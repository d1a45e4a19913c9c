"""The web dashboard: server-rendered pages over the same service layer as the API.

Every page calls the service functions the API calls, with the signed-in principal, so a
page shows exactly what the API would answer that caller. No build step: templates are
Jinja2, charts are drawn in the browser by Chart.js from data the page embeds, and the
third-party files are committed under ``static/vendor`` (their source and lock file are
in ``web-assets/``).
"""

from axcenter.web.app import mount

__all__ = ["mount"]
