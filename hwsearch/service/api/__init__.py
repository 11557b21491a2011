"""The REST API of the service (FastAPI): one router per resource under ``routers/``."""

from hwsearch.service.api.app import create_app
from hwsearch.service.api.auth import create_token
from hwsearch.service.api.settings import MAX_PAGE_SIZE, ServiceSettings

__all__ = ["MAX_PAGE_SIZE", "ServiceSettings", "create_app", "create_token"]
