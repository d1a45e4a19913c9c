"""The REST API (FastAPI). Routers are thin: they validate, call ``service``, answer."""
