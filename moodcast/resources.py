"""Where bundled files live, in a source checkout and inside an installed wheel."""

from __future__ import annotations

from pathlib import Path

import engine

DEMO_REPLAY = Path(engine.__file__).resolve().parent / "samples" / "ecommerce_demo.jsonl"
DEMO_ROOM = "demo"
