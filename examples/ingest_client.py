#!/usr/bin/env python3
"""Push chat into moodcast's ingest endpoint: a companion for platforms moodcast cannot read itself.

Standard library only, so it runs next to any tool that can print chat (a Douyin/Kuaishou/WeChat
Channels companion app, a browser-extension bridge, a log tail). Reads one message per line on stdin:

* a JSON object with the ingest fields (``text`` required; ``user``, ``room``, ``ts``, ``platform``,
  ``is_moderator``, ``gift_value``, ``id``), or
* plain text, sent as ``text`` with ``--room``/``--platform``.

Lines are batched (up to ``--batch`` messages or ``--flush`` seconds) and POSTed to ``/api/ingest``
with the bearer token from ``$MOODCAST_INGEST_TOKEN`` or ``--token-file``. When moodcast is down or
restarting, the batch is retried with exponential backoff and jitter; a batch moodcast rejects (4xx)
is reported and dropped, since resending it cannot succeed.

    some-chat-tool | python3 examples/ingest_client.py --room shop1 --platform douyin
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO


def parse_line(line: str, room: str, platform: str) -> dict[str, Any] | None:
    """One stdin line as an ingest message, or None for a blank line."""
    line = line.strip()
    if not line:
        return None
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            obj.setdefault("room", room)
            obj.setdefault("platform", platform)
            return obj
    return {"text": line, "room": room, "platform": platform, "ts": time.time()}


def post(url: str, token: str, messages: list[dict[str, Any]], timeout: float = 10.0) -> int:
    """POST one batch; returns the number accepted. HTTPError for a rejected batch, OSError when down."""
    body = json.dumps({"messages": messages}, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return int(json.loads(resp.read().decode("utf-8")).get("accepted", 0))


def send_with_retry(url: str, token: str, batch: list[dict[str, Any]], max_wait: float = 30.0) -> int:
    """Send a batch, retrying while moodcast is unreachable; give up only on a 4xx answer."""
    retry = 0
    while True:
        try:
            return post(url, token, batch)
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", errors="replace")[:300]
            if 400 <= e.code < 500:
                print(f"ingest rejected a batch of {len(batch)} (HTTP {e.code}): {detail}", file=sys.stderr)
                return 0
            reason = f"HTTP {e.code}"
        except OSError as e:  # connection refused, reset, timeout: moodcast is down or restarting
            reason = str(e)
        wait = min(max_wait, 0.5 * 2**retry) * (0.5 + random.random() / 2)
        retry += 1
        print(f"ingest unreachable ({reason}); retrying in {wait:.1f} s", file=sys.stderr)
        time.sleep(wait)


def run(
    lines: TextIO,
    url: str,
    token: str,
    *,
    room: str,
    platform: str,
    batch_size: int = 200,
    flush: float = 0.5,
) -> int:
    """Forward every line of ``lines`` until EOF; returns how many messages were accepted."""
    q: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=10_000)

    def reader() -> None:
        for line in lines:
            msg = parse_line(line, room, platform)
            if msg is not None:
                q.put(msg)
        q.put(None)

    threading.Thread(target=reader, daemon=True).start()
    accepted = 0
    done = False
    while not done:
        batch: list[dict[str, Any]] = []
        deadline = time.monotonic() + flush
        while len(batch) < batch_size:
            try:
                item = q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                done = True
                break
            batch.append(item)
        if batch:
            accepted += send_with_retry(url, token, batch)
    return accepted


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8750/api/ingest")
    ap.add_argument(
        "--token-file", default="var/ingest-token", help="used when $MOODCAST_INGEST_TOKEN is unset"
    )
    ap.add_argument("--room", default="default")
    ap.add_argument("--platform", default="ingest")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--flush", type=float, default=0.5, help="seconds to wait for a batch to fill")
    args = ap.parse_args(argv)
    token = os.environ.get("MOODCAST_INGEST_TOKEN", "").strip()
    if not token:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            ap.error(f"no token: set MOODCAST_INGEST_TOKEN or --token-file ({e})")
    n = run(
        sys.stdin,
        args.url,
        token,
        room=args.room,
        platform=args.platform,
        batch_size=args.batch,
        flush=args.flush,
    )
    print(f"{n} messages accepted", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
