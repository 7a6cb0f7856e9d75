"""Small JSON state files that outlive a restart: overlay tokens, OBS rule edits and pause, bot moderation.

Written whole, to a temporary file in the same folder then renamed over the old one, so a reader (or a
crash) never sees half a file. Read tolerantly: a missing file is "nothing saved"; an unreadable one is
logged and ignored, so a damaged state file costs the saved switches, never the start-up.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def write_json_atomic(path: Path, data: Any, *, private: bool = False) -> None:
    """Replace ``path`` with ``data`` as JSON; ``private`` creates it readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        # mkstemp already creates the file 0600; widen it only for non-secret state.
        if not private:
            os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json_object(path: Path | None, what: str) -> dict[str, Any] | None:
    """The JSON object saved in ``path``; None when there is none or it cannot be read (logged)."""
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("ignoring saved %s in %s: %s", what, path, e)
        return None
    if not isinstance(data, dict):
        log.warning("ignoring saved %s in %s: not a JSON object", what, path)
        return None
    return data
