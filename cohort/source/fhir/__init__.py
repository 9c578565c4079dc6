"""FHIR R4 server source: settings, client, auth, query plan, incremental pull, Bulk $export."""

from __future__ import annotations

from .plan import PullReport
from .pull import pull
from .settings import ServerSettings

__all__ = ["PullReport", "ServerSettings", "pull"]
