"""One module per area of the dashboard, each an APIRouter of pages under ``/ui``."""
