"""Read-only overlay tokens, one per room, kept in a 0600 JSON file so OBS URLs survive restarts.

The file is the single source of truth: ``moodcast overlay rotate-token`` (another process) writes it and
the running server notices the change by its mtime, so a rotated URL stops working without a restart.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from pathlib import Path

from engine.statefile import write_json_atomic

TOKEN_BYTES = 18
"""144 bits: unguessable, and short enough to paste into OBS without wrapping."""


class OverlayTokens:
    """Room -> token. ``path=None`` keeps them in memory only (tests, throwaway apps)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}
        self._mtime_ns: tuple[int, int] | None = None
        self._loaded = False

    # -- reading ------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Reload the file if another process changed it; cheap (one stat) when it did not."""
        if self.path is None:
            self._loaded = True
            return
        try:
            st = self.path.stat()
            # The inode changes on every rename-over, so a rewrite within one mtime tick is seen too.
            mtime: tuple[int, int] | None = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            mtime = None
        if self._loaded and mtime == self._mtime_ns:
            return
        tokens: dict[str, str] = {}
        if mtime is not None:
            raw = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            rooms = raw.get("rooms", {}) if isinstance(raw, dict) else {}
            tokens = {str(k): str(v) for k, v in rooms.items() if isinstance(v, str) and v}
        self._tokens, self._mtime_ns, self._loaded = tokens, mtime, True

    def changed(self) -> bool:
        """True when the file changed since it was last read (then it is re-read)."""
        with self._lock:
            before = (self._mtime_ns, dict(self._tokens))
            self._refresh()
            return before != (self._mtime_ns, self._tokens)

    def get(self, room: str) -> str | None:
        """The room's current token, or None if it has none yet."""
        with self._lock:
            self._refresh()
            return self._tokens.get(room)

    def check(self, room: str, token: object) -> bool:
        """True when ``token`` is the room's current token (constant-time compare)."""
        if not isinstance(token, str) or not token:
            return False
        expected = self.get(room)
        return expected is not None and hmac.compare_digest(token.encode(), expected.encode())

    def rooms(self) -> list[str]:
        """Rooms that have a token, sorted."""
        with self._lock:
            self._refresh()
            return sorted(self._tokens)

    # -- writing ------------------------------------------------------------------------------------
    def get_or_create(self, room: str) -> str:
        """The room's token, generating (and persisting) one the first time."""
        with self._lock:
            self._refresh()
            token = self._tokens.get(room)
            if token is None:
                token = secrets.token_urlsafe(TOKEN_BYTES)
                self._tokens[room] = token
                self._save()
            return token

    def rotate(self, room: str) -> str:
        """Replace the room's token with a fresh one; the old one stops working at once."""
        with self._lock:
            self._refresh()
            token = secrets.token_urlsafe(TOKEN_BYTES)
            self._tokens[room] = token
            self._save()
            return token

    def _save(self) -> None:
        if self.path is None:
            return
        # Write-then-rename, created 0600: a reader never sees half a file, nobody else ever reads it.
        write_json_atomic(self.path, {"rooms": self._tokens}, private=True)
        st = self.path.stat()
        self._mtime_ns = (st.st_mtime_ns, st.st_ino)
