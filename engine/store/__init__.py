"""SQLite storage: every classified message, per-minute mood aggregates and trigger events.

``Store`` is the blocking store (one writer thread); ``StoreWriter`` feeds it from the pipeline's
queues off the event loop. User names are never stored in clear, only as a keyed hash.
"""

from __future__ import annotations

from engine.store.db import Store
from engine.store.errors import StoreError
from engine.store.rows import StoredMessage, user_hash
from engine.store.schema import SCHEMA_VERSION
from engine.store.writer import StoreWriter

__all__ = ["SCHEMA_VERSION", "Store", "StoreError", "StoreWriter", "StoredMessage", "user_hash"]
