"""``moodcast doctor``: check what a stream needs and say plainly what to fix."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.config import Config


@dataclass(frozen=True, slots=True)
class Check:
    """One doctor finding: ok, warn or fail, with what to do about it."""

    status: str  # "ok" | "warn" | "fail"
    name: str
    detail: str
    fix: str = ""


_MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def check_model(config: Config) -> Check:
    """The configured model loads and reads a message."""
    from engine.classify.base import ModelError
    from engine.classify.registry import ModelRegistry

    dirs = [config.resolve(config.classifier.models_dir)] if config.classifier.models_dir else []
    try:
        reg = ModelRegistry(dirs)
        model = reg.get(config.classifier.model)
        pred = model.predict(["哈哈哈笑死我了"])[0]
    except (ModelError, OSError, ValueError) as e:
        return Check(
            "fail", "model", str(e), "set [classifier] model to one of the ids `moodcast eval` lists"
        )
    info = model.info
    return Check(
        "ok",
        "model",
        f"{info.model_id} ({info.tier}, {info.size_bytes / 1e6:.1f} MB): 哈哈哈笑死我了 -> {pred.emotion}",
    )


def check_port(config: Config) -> Check:
    """The server's port is free (or already held by a moodcast)."""
    host, port = config.server.host, config.server.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return Check(
                "fail",
                "port",
                f"{host}:{port} is not available ({e.strerror})",
                "stop the program using it, or set [server] port / pass --port",
            )
    note = (
        ""
        if host in {"127.0.0.1", "localhost", "::1"}
        else " (reachable from other machines: see README, Security)"
    )
    return Check("ok", "port", f"{host}:{port} is free{note}")


def check_storage(config: Config) -> Check:
    """The SQLite database can be opened for writing."""
    from engine.store import Store, StoreError

    path = config.resolve(config.store.path)
    try:
        store = Store.open(path)
        try:
            n = store.count_messages()
        finally:
            store.close()
    except StoreError as e:
        return Check("fail", "storage", str(e), "set [store] path to a writable location")
    return Check("ok", "storage", f"{path} ({n} messages stored)")


def check_sources(config: Config) -> list[Check]:
    """Each configured replay file exists."""
    from moodcast.service import default_sources

    out: list[Check] = []
    for i, s in enumerate(default_sources(config)):
        if s.type == "replay":
            p = config.resolve(s.path)
            if p.is_file():
                out.append(Check("ok", f"source {i}", f"replay {p} -> room {s.room!r}"))
            else:
                out.append(
                    Check("fail", f"source {i}", f"replay file not found: {p}", f"fix sources[{i}].path")
                )
        else:
            out.append(Check("ok", f"source {i}", f"{s.type} -> room {s.room!r}"))
    return out


def check_ingest(config: Config) -> Check:
    """Where the ingest token comes from (never the token itself)."""
    if not config.ingest.enabled:
        return Check("ok", "ingest", "disabled ([ingest] enabled = false)")
    if os.environ.get(config.ingest.token_env):
        return Check("ok", "ingest", f"token from ${config.ingest.token_env}")
    path = config.resolve(config.ingest.token_file)
    where = f"token file {path}" if path.exists() else f"a token will be generated into {path} at start"
    return Check("ok", "ingest", where)


def check_obs(config: Config, connect: Callable[[str, int, float], None] | None = None) -> Check:
    """OBS is reachable when scene automation is on."""
    obs = config.obs
    if not obs.enabled:
        return Check("ok", "obs", "scene automation off ([obs] enabled = false)")
    try:
        (connect or _tcp_connect)(obs.host, obs.port, 2.0)
    except OSError as e:
        return Check(
            "fail",
            "obs",
            f"cannot reach obs-websocket at {obs.host}:{obs.port} ({e})",
            "start OBS and enable Tools > WebSocket Server Settings, or fix [obs] host/port",
        )
    if not os.environ.get(obs.password_env):
        return Check(
            "warn",
            "obs",
            f"reachable at {obs.host}:{obs.port}, but ${obs.password_env} is not set",
            f"export {obs.password_env}=<the password from OBS WebSocket Server Settings>",
        )
    return Check("ok", "obs", f"reachable at {obs.host}:{obs.port}")


def _tcp_connect(host: str, port: int, timeout: float) -> None:
    with socket.create_connection((host, port), timeout=timeout):
        pass


def run_doctor(config: Config, out: Callable[[str], None] = print) -> int:
    """Run every check, print the findings, return 1 if anything must be fixed."""
    source = Path(config.base_dir) if config.base_dir != "." else Path.cwd()
    out(f"moodcast doctor (config relative to {source})")
    checks = [
        check_model(config),
        check_port(config),
        check_storage(config),
        *check_sources(config),
        check_ingest(config),
        check_obs(config),
    ]
    for c in checks:
        out(f"  [{_MARK[c.status]}] {c.name}: {c.detail}")
        if c.fix:
            out(f"         fix: {c.fix}")
    failed = sum(c.status == "fail" for c in checks)
    out("all good." if not failed else f"{failed} problem(s) to fix.")
    return 1 if failed else 0
