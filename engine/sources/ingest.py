"""Authenticated push ingest: ``POST /api/ingest`` and the ``GET /api/ingest/ws`` WebSocket.

A body (or a WebSocket text frame) is one message object, a list of them, or ``{"messages": [...]}``;
each message has the fields of ``ChatMessage.from_mapping``. A batch is all-or-nothing: every message
is validated before any is emitted, and an error names the index and field to fix.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from engine.ratelimit import RateLimiter, retry_after_header
from engine.sources.base import Emit
from engine.store.errors import StoreError
from engine.types import ChatMessage, MessageError

if TYPE_CHECKING:
    from engine.store.journal import AsyncJournal

log = logging.getLogger(__name__)

PLATFORM = "ingest"
WS_HARD_LIMIT_FACTOR = 4
"""Frames up to this many times max_body_bytes get an error reply; bigger ones close the socket (1009)."""


class IngestError(ValueError):
    """A rejected request or frame; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass
class IngestState:
    """Ingest settings and counters of one app (under INGEST_KEY)."""

    token: bytes
    emit: Emit
    max_body_bytes: int
    max_batch: int
    default_room: str
    journal: AsyncJournal | None = None
    """When set, a batch is acknowledged only after it is committed here (the durability guarantee)."""
    limiter: RateLimiter | None = None
    """Messages per second per client address; over it: 429 with Retry-After."""
    overloaded: Callable[[], float] | None = None
    """Seconds to wait when the pipeline is over capacity (503 + Retry-After), else 0."""
    accepted: int = 0
    rejected: int = 0
    rate_limited: int = 0
    overload_refused: int = 0
    journal_errors: int = 0
    sockets: weakref.WeakSet[web.WebSocketResponse] = field(default_factory=weakref.WeakSet)

    def stats(self) -> dict[str, int]:
        """Counters for the dashboard."""
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rate_limited": self.rate_limited,
            "overload_refused": self.overload_refused,
            "journal_errors": self.journal_errors,
            "sockets": len(self.sockets),
        }


INGEST_KEY = web.AppKey("moodcast_ingest", IngestState)


def add_ingest_routes(
    app: web.Application,
    *,
    token: str,
    emit: Emit,
    max_body_bytes: int,
    max_batch: int,
    default_room: str = "default",
    journal: AsyncJournal | None = None,
    limiter: RateLimiter | None = None,
    overloaded: Callable[[], float] | None = None,
) -> None:
    """Add the ingest endpoints to ``app``; ``emit`` receives every accepted message."""
    if not token:
        # Refuse everything rather than accept everything: an empty token must never authenticate.
        log.warning("ingest has no token configured; every ingest request will be refused")
    app[INGEST_KEY] = IngestState(
        token.encode("utf-8"),
        emit,
        max_body_bytes,
        max_batch,
        default_room,
        journal=journal,
        limiter=limiter,
        overloaded=overloaded,
    )
    app.router.add_post("/api/ingest", _post)
    app.router.add_get("/api/ingest/ws", _websocket)
    app.on_shutdown.append(_close_sockets)


# ---------------------------------------------------------------------------------------------- parsing

_FIELD_ERROR = re.compile(r"^field '([^']+)' (.*)$", re.DOTALL)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_batch(
    body: str, *, default_room: str, max_batch: int, platform: str = PLATFORM
) -> list[ChatMessage]:
    """Parse and validate a whole batch; raises IngestError(400) naming the index and field at fault."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise IngestError(400, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:
        raise IngestError(400, f"invalid JSON: {e}") from None
    except RecursionError:
        raise IngestError(400, "invalid JSON: nested too deeply") from None
    items: list[Any]
    if isinstance(data, list):
        items, single = data, False
    elif isinstance(data, dict) and "messages" in data:
        if not isinstance(data["messages"], list):
            raise IngestError(400, "'messages' must be an array of message objects")
        items, single = data["messages"], False
    elif isinstance(data, dict):
        items, single = [data], True
    else:
        raise IngestError(400, 'body must be a message object, an array of them, or {"messages": [...]}')
    if not items:
        raise IngestError(400, "empty batch: send at least one message")
    if len(items) > max_batch:
        raise IngestError(400, f"too many messages: {len(items)} in one batch, at most {max_batch}")
    out: list[ChatMessage] = []
    for i, item in enumerate(items):
        where = "message" if single else f"messages[{i}]"
        try:
            out.append(ChatMessage.from_mapping(item, default_room=default_room, platform=platform))
        except MessageError as e:
            raise IngestError(400, _locate(where, str(e))) from None
    return out


def _locate(where: str, error: str) -> str:
    """``field 'text' must be a string`` -> ``messages[3].text must be a string``."""
    m = _FIELD_ERROR.match(error)
    if m:
        return f"{where}.{m.group(1)} {m.group(2)}"
    if error.startswith("message "):
        return f"{where} {error[len('message ') :]}"
    return f"{where}: {error}"


def _decode(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise IngestError(400, f"body is not valid UTF-8 (bad byte at offset {e.start})") from None
    return text.removeprefix("\ufeff")


# ----------------------------------------------------------------------------------------------- auth


def _check_token(state: IngestState, request: web.Request, *, allow_query: bool) -> None:
    given: str | None = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise IngestError(401, "Authorization header must be 'Bearer <token>'")
        given = value.strip()
    elif allow_query and "token" in request.query:
        # Browsers cannot set headers on a WebSocket, hence the query form there (and only there).
        given = request.query["token"]
    if given is None:
        raise IngestError(401, "missing token: send 'Authorization: Bearer <token>'")
    if not state.token or not hmac.compare_digest(given.encode("utf-8"), state.token):
        log.warning("ingest: rejected a bad token from %s", request.remote)
        raise IngestError(401, "invalid token")


def _error(status: int, message: str, retry_after: float = 0.0) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="moodcast-ingest"'} if status == 401 else {}
    if status in (429, 503):
        headers["Retry-After"] = retry_after_header(retry_after)
    return web.json_response({"error": message}, status=status, headers=headers or None)


async def _admit(state: IngestState, client: str, batch: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Rate limit, capacity and journal: the batch as it must be emitted, or IngestError (nothing kept)."""
    if state.limiter is not None:
        wait = state.limiter.take(client, len(batch))
        if wait > 0:
            state.rate_limited += 1
            raise IngestError(429, f"rate limit: retry in {wait:.1f} s", wait)
    if state.overloaded is not None:
        wait = state.overloaded()
        if wait > 0:
            # Refusing is the honest answer: an acknowledged message must not be dropped by a full queue.
            state.overload_refused += 1
            raise IngestError(503, "over capacity: the pipeline is full, retry later", wait)
    if state.journal is None:
        return list(batch)
    try:
        return await state.journal.append(batch)
    except StoreError as e:
        state.journal_errors += 1
        log.error("ingest: %s", e)
        raise IngestError(503, f"cannot journal the batch, nothing was accepted: {e.reason}", 5.0) from None


def _emit(state: IngestState, batch: Sequence[ChatMessage]) -> None:
    for msg in batch:
        state.emit(msg)
    state.accepted += len(batch)


# --------------------------------------------------------------------------------------------- handlers


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refusing (413) before reading when Content-Length is too big, and while reading otherwise."""
    too_big = IngestError(413, f"body too large: at most {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _post(request: web.Request) -> web.Response:
    state = request.app[INGEST_KEY]
    try:
        _check_token(state, request, allow_query=False)
        body = await _read_limited(request, state.max_body_bytes)
        batch = parse_batch(_decode(body), default_room=state.default_room, max_batch=state.max_batch)
        batch = await _admit(state, request.remote or "", batch)
    except IngestError as e:
        state.rejected += 1
        # An unread body is drained by aiohttp's lingering close, so the client still reads this reply.
        return _error(e.status, e.message, e.retry_after)
    _emit(state, batch)
    return web.json_response({"accepted": len(batch)}, status=202)


async def _websocket(request: web.Request) -> web.StreamResponse:
    state = request.app[INGEST_KEY]
    try:
        _check_token(state, request, allow_query=True)
    except IngestError as e:
        state.rejected += 1
        return _error(e.status, e.message)
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=state.max_body_bytes * WS_HARD_LIMIT_FACTOR)
    await ws.prepare(request)
    state.sockets.add(ws)
    try:
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                reply = await _handle_frame(state, frame.data, request.remote or "")
            elif frame.type == WSMsgType.BINARY:
                state.rejected += 1
                reply = {"ok": False, "error": "binary frames are not accepted; send JSON as text frames"}
            else:
                continue
            await ws.send_json(reply)
    finally:
        state.sockets.discard(ws)
    return ws


async def _handle_frame(state: IngestState, data: str, client: str) -> dict[str, Any]:
    try:
        if len(data.encode("utf-8")) > state.max_body_bytes:
            raise IngestError(413, f"frame too large: at most {state.max_body_bytes} bytes")
        batch = parse_batch(data, default_room=state.default_room, max_batch=state.max_batch)
        batch = await _admit(state, client, batch)
    except IngestError as e:
        state.rejected += 1
        reply: dict[str, Any] = {"ok": False, "error": e.message}
        if e.retry_after > 0:
            reply["retry_after"] = max(1, round(e.retry_after + 0.499))
        return reply
    _emit(state, batch)
    return {"ok": True, "accepted": len(batch)}


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[INGEST_KEY].sockets):
        await ws.close(code=1001, message=b"server shutting down")
