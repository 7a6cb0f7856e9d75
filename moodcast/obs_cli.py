"""The ``moodcast simulate`` and ``moodcast obs pause|resume|status`` commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import Config

COMMANDS = frozenset({"simulate", "obs"})


def add_parsers(sub: Any) -> None:
    """Add ``simulate`` and ``obs`` to the ``moodcast`` subcommand parser."""
    sim = sub.add_parser(
        "simulate", help="run a chat recording through the OBS rules without OBS; print the timeline"
    )
    sim.add_argument("--replay", required=True, help="chat file (JSONL, CSV or text), as for `run --replay`")
    sim.add_argument("--config", help="config file with [[obs.rules]] (default: embedded defaults)")
    sim.add_argument("--room", default="demo", help="room the chat belongs to (default: demo)")
    sim.add_argument("--scene", default="(program scene)", help="the scene live at the start")
    sim.add_argument("--model", default=None, help="model id (default from config)")
    sim.add_argument("--tail", type=float, default=60.0, help="seconds simulated after the last message")

    obs = sub.add_parser("obs", help="pause, resume or show OBS scene automation in a running moodcast")
    obs.add_argument("action", choices=["pause", "resume", "status"])
    obs.add_argument("--config", help="config file (finds the server and the admin token file)")
    obs.add_argument("--url", default=None, help="server base URL (default from [server])")


def main(args: argparse.Namespace, load: Callable[[str | None], Config]) -> int:
    """Run ``simulate`` or ``obs``; ``load`` reads the config (exits on errors)."""
    config = load(args.config)
    if args.command == "simulate":
        return _simulate(args, config)
    return _obs(args, config)


def _simulate(args: argparse.Namespace, config: Config) -> int:
    from dataclasses import replace

    from engine.classify.base import ModelError
    from engine.classify.registry import ModelRegistry
    from engine.sources.base import SourceError
    from moodcast.simulate import simulate

    if args.model:
        config = replace(config, classifier=replace(config.classifier, model=args.model))
    path = Path(args.replay)
    if not path.is_file():
        print(f"moodcast simulate: replay file not found: {path}", file=sys.stderr)
        return 2
    dirs = [config.resolve(config.classifier.models_dir)] if config.classifier.models_dir else []
    try:
        registry = ModelRegistry(dirs)
        result = asyncio.run(
            simulate(
                config,
                path,
                load_model=registry.get,
                room=args.room,
                start_scene=args.scene,
                tail_seconds=args.tail,
            )
        )
    except (ModelError, SourceError, OSError) as e:
        print(f"moodcast simulate: {e}", file=sys.stderr)
        return 2
    return 0 if result.messages else 1


def admin_token(config: Config) -> str:
    """The admin token: ``$MOODCAST_ADMIN_TOKEN`` or the dashboard's token file ("" if neither)."""
    from overlay.auth import ADMIN_TOKEN_ENV

    env = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    if env:
        return env
    path = config.resolve(config.dashboard.admin_token_file)
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _obs(args: argparse.Namespace, config: Config) -> int:
    server = config.server
    host = "127.0.0.1" if server.host in {"0.0.0.0", "", "::"} else server.host
    base = (args.url or server.public_url or f"http://{host}:{server.port}").rstrip("/")
    token = admin_token(config)
    if not token:
        print(
            "moodcast obs: no admin token: set MOODCAST_ADMIN_TOKEN or run from the directory with "
            f"{config.dashboard.admin_token_file}",
            file=sys.stderr,
        )
        return 2
    method, path = ("GET", "/api/obs") if args.action == "status" else ("POST", f"/api/obs/{args.action}")
    req = urllib.request.Request(
        base + path,
        method=method,
        headers={"Authorization": f"Bearer {token}"},
        data=b"" if method == "POST" else None,
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            data = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        print(f"moodcast obs {args.action}: {base} answered {e.code}: {detail}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        print(f"moodcast obs {args.action}: cannot reach moodcast at {base}: {e}", file=sys.stderr)
        return 1
    if args.action == "status":
        print(_describe(data))
    else:
        print(f"OBS automation {'paused' if data.get('paused') else 'running'} ({base})")
    return 0


def _describe(s: dict[str, Any]) -> str:
    lines = [f"OBS: {s.get('state')} - {s.get('detail', '')}"]
    if not s.get("enabled"):
        return lines[0]
    flags = [f for f, on in (("PAUSED", s.get("paused")), ("DRY RUN", s.get("dry_run"))) if on]
    lines.append(f"live scene: {s.get('current_scene')}" + (f"  [{', '.join(flags)}]" if flags else ""))
    for r in s.get("rules", []):
        state = "active in " + ", ".join(r["active_rooms"]) if r.get("active_rooms") else "idle"
        on = "on " if r.get("enabled") else "off"
        lines.append(
            f"  [{on}] {r['name']}: {r['metric_label']} >= {r['threshold']} for {r['for_seconds']}s, "
            f"exit <= {r['exit_threshold']} for {r['calm_seconds']}s; {state}"
        )
    for e in s.get("recent", [])[:10]:
        lines.append(f"  {e['kind']}: {e['message']}")
    return "\n".join(lines)
