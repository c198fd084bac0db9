"""freshcache's own state: connections, tables and pending deletions (no Prefect, no HTTP)."""

from catalog.catalog import Catalog, utc_now
from catalog.errors import (
    CatalogError,
    ConnectionNotFoundError,
    DuplicateConnectionError,
    TableNotFoundError,
)
from catalog.records import (
    ConnectionRecord,
    DiscoveredTable,
    Increments,
    PendingDeletion,
    Snapshot,
    SwapResult,
    TableRecord,
    TableSync,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "ConnectionNotFoundError",
    "ConnectionRecord",
    "DiscoveredTable",
    "DuplicateConnectionError",
    "Increments",
    "PendingDeletion",
    "Snapshot",
    "SwapResult",
    "TableNotFoundError",
    "TableRecord",
    "TableSync",
    "utc_now",
]
