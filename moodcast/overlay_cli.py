"""The overlay and dashboard side of the composition root: admin and overlay tokens, dashboard wiring,
and the ``moodcast overlay rotate-token|url ROOM`` commands."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.config import Config

if TYPE_CHECKING:
    from aiohttp import web

    from engine.types import Prediction
    from moodcast.service import Service
    from overlay.tokens import OverlayTokens


@dataclass(frozen=True, slots=True)
class AdminToken:
    """The admin token, where it lives, and whether this start generated it (then it is printed once)."""

    token: str
    where: str
    generated: bool


def load_admin(config: Config) -> AdminToken:
    """$MOODCAST_ADMIN_TOKEN, else ``[dashboard] admin_token_file`` (generated 0600 on first start)."""
    from overlay.auth import load_admin_token

    token, where, generated = load_admin_token(config.resolve(config.dashboard.admin_token_file))
    return AdminToken(token, where, generated)


def overlay_tokens(config: Config) -> OverlayTokens:
    """The persistent per-room overlay tokens (``[overlay] token_file``)."""
    from overlay.tokens import OverlayTokens

    return OverlayTokens(config.resolve(config.overlay.token_file))


def base_url(config: Config) -> str:
    """What people paste into OBS: ``[server] public_url`` or http://host:port (0.0.0.0 -> 127.0.0.1)."""
    host, port = config.server.host, config.server.port
    return config.server.public_url.rstrip("/") or (
        f"http://{'127.0.0.1' if host in {'0.0.0.0', ''} else host}:{port}"
    )


def dashboard_setup(service: Service) -> Callable[[web.Application], None]:
    """A create_app setup that gives the dashboard the classifier, the model list and source health."""
    from engine.normalise import normalise
    from overlay import keys

    registry = service.registry
    config = service.config

    def classify(texts: Sequence[str], model_id: str | None) -> list[Prediction]:
        model = registry.get(model_id or config.classifier.model)
        return model.predict([normalise(t, config.flood.max_run) for t in texts])

    def sources_health() -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for s in service.sources:
            state: dict[str, Any] = dataclasses.asdict(s.state)
            state.pop("signals", None)
            out.append({"name": s.name, "room": s.room, **state})
        return out

    def setup(app: web.Application) -> None:
        app[keys.CLASSIFY] = classify
        app[keys.MODEL_IDS] = registry.ids
        app[keys.SOURCES_HEALTH] = sources_health

    return setup


def print_run_banner(config: Config, rooms: Sequence[str], admin: AdminToken | None) -> None:
    """The overlay URLs (with their tokens) and how to log in, printed by ``moodcast run``."""
    from overlay.pages import overlay_path

    base = base_url(config)
    tokens = overlay_tokens(config)
    for room in rooms:
        print(f"  overlay   {base}{overlay_path(room, tokens.get_or_create(room))}", flush=True)
    print(f"  dashboard {base}/dashboard", flush=True)
    if admin is not None:
        if admin.generated:
            # Printed this once; afterwards it is only in the 0600 file.
            print(f"  admin token (generated, saved in {admin.where}): {admin.token}", flush=True)
        else:
            print(f"  admin token: {admin.where}", flush=True)


def add_parsers(sub: Any) -> None:
    """``moodcast overlay rotate-token ROOM`` and ``moodcast overlay url ROOM``."""
    ov = sub.add_parser("overlay", help="overlay URLs and their read-only tokens")
    ov_sub = ov.add_subparsers(dest="overlay_command", required=True)
    rot = ov_sub.add_parser("rotate-token", help="issue a new overlay token; the old URL stops working")
    url = ov_sub.add_parser("url", help="print a room's overlay URL (creates its token the first time)")
    for p in (rot, url):
        p.add_argument("room")
        p.add_argument("--config", help="config file")
        p.add_argument("--widget", default="", help="one widget: gauge, heatmap, timeline, ticker, alert")


def main(args: argparse.Namespace, load: Callable[[str | None], Config]) -> int:
    """Run an ``overlay`` subcommand."""
    from overlay.pages import WIDGETS, overlay_path
    from overlay.wire import room_name

    config = load(args.config)
    room = room_name(args.room)
    if room is None:
        print(f"moodcast overlay: not a valid room name: {args.room!r}", file=sys.stderr)
        return 2
    if args.widget and args.widget not in WIDGETS:
        print(f"moodcast overlay: --widget must be one of {', '.join(WIDGETS)}", file=sys.stderr)
        return 2
    tokens = overlay_tokens(config)
    try:
        token = tokens.rotate(room) if args.overlay_command == "rotate-token" else tokens.get_or_create(room)
    except OSError as e:
        print(f"moodcast overlay: cannot write {tokens.path}: {e.strerror}", file=sys.stderr)
        return 2
    if args.overlay_command == "rotate-token":
        # A running server re-reads the file within seconds and cuts off overlays on the old token.
        print(f"moodcast: new overlay token for room {room!r}; the old URL no longer works", file=sys.stderr)
    print(base_url(config) + overlay_path(room, token, args.widget))
    return 0
