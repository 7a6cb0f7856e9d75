"""Chat sources: file replay, the room simulator and the authenticated HTTP/WebSocket ingest."""

from __future__ import annotations

from engine.sources.base import Emit, Source, SourceError, SourceState, build_source

__all__ = ["Emit", "Source", "SourceError", "SourceState", "build_source"]
