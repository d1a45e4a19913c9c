"""The dashboard's tests reuse the API's real center (both databases) and tenants."""

from tests.api.conftest import center, tenants

__all__ = ["center", "tenants"]
