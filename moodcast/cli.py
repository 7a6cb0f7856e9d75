"""The ``moodcast`` command: run, classify, doctor, train, eval."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.config import Config, ConfigError, SourceConfig, load_config

log = logging.getLogger("moodcast")


def _load(path: str | None) -> Config:
    try:
        config = load_config(path)
        from engine.rules import compile_rules

        compile_rules(config.obs.rules)  # a bad [[obs.rules]] table stops start-up here, named
        return config
    except ConfigError as e:
        print(f"moodcast: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="moodcast", description="Read the room: live chat emotions for streamers."
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the pipeline, overlay and dashboard (bundled demo by default)")
    run.add_argument("--config", help="config file (default: embedded defaults, see config.toml)")
    run.add_argument(
        "--replay", help="replay this chat file (JSONL, CSV or text) instead of the configured sources"
    )
    run.add_argument("--room", default=None, help="room name for --replay (default: demo)")
    run.add_argument(
        "--speed", type=float, default=None, help="replay speed factor (0 = as fast as possible)"
    )
    run.add_argument("--no-loop", action="store_true", help="play the replay once")
    run.add_argument(
        "--no-sources", action="store_true", help="no replay or simulator: only chat pushed to ingest"
    )
    run.add_argument("--host", default=None, help="bind address (default from config: 127.0.0.1)")
    run.add_argument("--port", type=int, default=None, help="port (default from config: 8750)")
    run.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    run.add_argument("--exit-when-done", action="store_true", help="stop when every source has finished")
    run.add_argument("-v", "--verbose", action="store_true")

    cl = sub.add_parser("classify", help="classify messages given as arguments or one per line on stdin")
    cl.add_argument("texts", nargs="*")
    cl.add_argument("--model", default=None, help="model id or .onnx path (default from config)")
    cl.add_argument("--config", help="config file")
    cl.add_argument("--json", action="store_true", help="one JSON object per line")

    doc = sub.add_parser("doctor", help="check config, model, port, storage and OBS; say what to fix")
    doc.add_argument("--config", help="config file")

    sub.add_parser("train", help="train a model from ../shared/data or your own CSV", add_help=False)
    sub.add_parser("eval", help="evaluate a model on a labelled CSV/TSV", add_help=False)
    from moodcast import obs_cli

    obs_cli.add_parsers(sub)
    from moodcast import overlay_cli

    overlay_cli.add_parsers(sub)
    from report import cli as report_cli

    report_cli.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``moodcast`` console command."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # train/eval own their arguments (their parsers live with the training code).
    if args_list and args_list[0] in {"train", "eval"}:
        from engine.training.cli import eval_main, train_main

        return (train_main if args_list[0] == "train" else eval_main)(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command == "run":
        return _cmd_run(args)
    if args.command == "classify":
        return _cmd_classify(args)
    if args.command == "doctor":
        from moodcast.doctor import run_doctor

        return run_doctor(_load(args.config))
    if args.command == "overlay":
        from moodcast import overlay_cli

        return overlay_cli.main(args, _load)
    if args.command == "report":
        from report import cli as report_cli

        return report_cli.main(args, _load)
    if args.command in {"simulate", "obs"}:
        from moodcast import obs_cli

        return obs_cli.main(args, _load)
    return 2  # pragma: no cover - argparse requires a command


def _cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from moodcast.service import with_overrides

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = with_overrides(_load(args.config), host=args.host, port=args.port)
    if args.replay:
        src = SourceConfig(
            type="replay",
            room=args.room or "demo",
            path=str(Path(args.replay).resolve()),
            speed=1.0 if args.speed is None else args.speed,
            loop=not args.no_loop,
        )
        config = replace(config, sources=(src,))
    elif args.speed is not None or args.no_loop:
        from moodcast.service import default_sources

        config = replace(
            config,
            sources=tuple(
                replace(
                    s, speed=s.speed if args.speed is None else args.speed, loop=s.loop and not args.no_loop
                )
                for s in default_sources(config)
            ),
        )
    try:
        return asyncio.run(
            _serve(
                config,
                duration=args.duration,
                exit_when_done=args.exit_when_done,
                with_sources=not args.no_sources,
            )
        )
    except KeyboardInterrupt:
        return 0


async def _serve(
    config: Config, *, duration: float | None, exit_when_done: bool, with_sources: bool = True
) -> int:
    from aiohttp import web

    from engine.classify.base import ModelError
    from engine.store import StoreError
    from moodcast.service import build_app, build_service, default_sources, ingest_token

    try:
        service = build_service(config, with_sources=with_sources)
    except (ModelError, OSError, ValueError) as e:
        print(f"moodcast: cannot start: {e}", file=sys.stderr)
        return 2
    app = build_app(service)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    try:
        await runner.setup()
    except StoreError as e:
        print(f"moodcast: cannot start: {e}", file=sys.stderr)
        return 2
    host, port = config.server.host, config.server.port
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as e:
        await runner.cleanup()
        print(
            f"moodcast: cannot listen on {host}:{port}: {e.strerror}. Use --port or [server] port.",
            file=sys.stderr,
        )
        return 2
    base = (
        config.server.public_url.rstrip("/")
        or f"http://{'127.0.0.1' if host in {'0.0.0.0', ''} else host}:{port}"
    )
    rooms = sorted({s.room for s in default_sources(config)}) if with_sources else []
    print(f"moodcast is reading the room (model: {config.classifier.model})", flush=True)
    from moodcast.overlay_cli import print_run_banner

    print_run_banner(config, rooms, service.admin)  # overlay URLs with their tokens, dashboard, login
    if config.ingest.enabled:
        _, where = ingest_token(config)
        print(f"  ingest    POST {base}/api/ingest  (bearer token: {where})", flush=True)
    print(f"  storage   {config.resolve(config.store.path)}", flush=True)
    print("Press Ctrl+C to stop.", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiters: list[asyncio.Task[object]] = [asyncio.create_task(stop.wait())]
    if duration is not None:
        waiters.append(asyncio.create_task(asyncio.sleep(duration)))
    if exit_when_done:
        waiters.append(asyncio.create_task(service.sources_done.wait()))
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    print("moodcast: stopping; draining the pipeline and flushing storage...", flush=True)
    await runner.cleanup()
    st = service.pipeline.stats()
    ws = service.writer.stats() if service.writer else {}
    lost = int(str(ws.get("lost_messages", 0))) + int(str(ws.get("lost_events", 0)))
    print(
        f"moodcast: stopped. classified {st['classified']} messages, dropped {st['dropped']}; "
        f"stored {ws.get('written_messages', 0)} messages and {ws.get('written_events', 0)} events"
        + (f"; {lost} rows could not be written (see the log)" if lost else ""),
        flush=True,
    )
    return 0


def _cmd_classify(args: argparse.Namespace) -> int:
    from engine.classify.base import ModelError
    from engine.classify.registry import ModelRegistry
    from engine.normalise import normalise

    config = _load(args.config)
    texts = list(args.texts) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        print("moodcast classify: give messages as arguments or on stdin", file=sys.stderr)
        return 2
    dirs = [config.resolve(config.classifier.models_dir)] if config.classifier.models_dir else []
    try:
        model = ModelRegistry(dirs).get(args.model or config.classifier.model)
    except ModelError as e:
        print(f"moodcast classify: {e}", file=sys.stderr)
        return 2
    norms = [normalise(t, config.flood.max_run) for t in texts]
    preds = model.predict(norms)
    for text, pred in zip(texts, preds, strict=True):
        if args.json:
            out = {"text": text, "emotion": pred.emotion, "confidence": round(pred.confidence, 4)}
            out["scores"] = {k: round(v, 4) for k, v in pred.as_dict().items()}
            print(json.dumps(out, ensure_ascii=False))
        else:
            scores = " ".join(f"{k}={v:.2f}" for k, v in pred.as_dict().items())
            print(f"{pred.emotion:<8} {pred.confidence:.2f}  {text}\n         {scores}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
