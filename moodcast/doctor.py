"""``moodcast doctor``: check what a stream needs and say plainly what to fix."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import Config
from engine.sources.platforms import PLATFORM_TYPES, readiness


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
        elif s.type in PLATFORM_TYPES:
            r = readiness(s)
            out.append(Check(r.status, f"source {i}", r.detail, r.fix))
        else:
            out.append(Check("ok", f"source {i}", f"{s.type} -> room {s.room!r}"))
    return out


_HEALTH_MARK = {
    "connected": "ok",
    "running": "ok",
    "finished": "ok",
    "starting": "warn",
    "connecting": "warn",
    "reconnecting": "warn",
    "auth_failed": "fail",
    "rate_limited": "fail",
    "error": "fail",
}
_HEALTH_FIX = {
    "auth_failed": "check the source's credentials (cookie_env, auth_code_env, app key): docs/platforms.md",
    "rate_limited": "the platform is throttling this machine: wait, use a login cookie, or reduce rooms",
    "error": "fix the [[sources]] setting named in the detail",
}


def check_live_sources(config: Config, fetch: Callable[[str], dict[str, Any]] | None = None) -> list[Check]:
    """Live source health from a moodcast running with this config (its /healthz), if one runs."""
    url = f"http://{config.server.host}:{config.server.port}/healthz"
    try:
        body = (fetch or _fetch_json)(url)
    except OSError:
        return [Check("ok", "source health", "moodcast is not running here; it shows while moodcast runs")]
    except ValueError as e:
        return [Check("warn", "source health", f"{url} answered something unexpected ({e})")]
    stats = body.get("stats")
    sources = stats.get("sources") if isinstance(stats, dict) else None
    if not isinstance(sources, dict) or not sources:
        return [Check("ok", "source health", f"moodcast at {url} reports no live source health")]
    out: list[Check] = []
    for name, h in sources.items():
        if not isinstance(h, dict):
            continue
        status = str(h.get("status", "?"))
        mark = _HEALTH_MARK.get(status, "warn")
        detail = f"{status}: {h.get('detail', '')} ({h.get('messages', 0)} messages"
        detail += f", {h.get('reconnects', 0)} reconnects)" if h.get("reconnects") else ")"
        fix = _HEALTH_FIX.get(status, "")
        if h.get("names_masked") and mark == "ok":
            mark = "warn"
            fix = "viewers' names are masked: set sources.cookie_env to a logged-in Bilibili cookie"
        out.append(Check(mark, f"live {name}", detail, fix))
    return out


def _fetch_json(url: str) -> dict[str, Any]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2.0) as resp:  # our own server's loopback URL
            data = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raise ValueError(f"HTTP {e.code}") from None
    except urllib.error.URLError as e:
        raise OSError(str(e.reason)) from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def check_ingest(config: Config) -> Check:
    """Where the ingest token comes from (never the token itself)."""
    if not config.ingest.enabled:
        return Check("ok", "ingest", "disabled ([ingest] enabled = false)")
    if os.environ.get(config.ingest.token_env):
        return Check("ok", "ingest", f"token from ${config.ingest.token_env}")
    path = config.resolve(config.ingest.token_file)
    where = f"token file {path}" if path.exists() else f"a token will be generated into {path} at start"
    return Check("ok", "ingest", where)


def check_obs(config: Config, probe: Callable[..., dict[str, Any]] | None = None) -> Check:
    """When scene automation is on: really connect (GetVersion) and tell a wrong password from no OBS."""
    from engine.rules import compile_rules
    from overlay.obs.link import ObsConnectError

    obs = config.obs
    rules = compile_rules(obs.rules)
    if not obs.enabled:
        extra = f"; {len(rules)} rule(s) configured, see `moodcast simulate`" if rules else ""
        return Check("ok", "obs", f"scene automation off ([obs] enabled = false){extra}")
    if probe is None:
        from overlay.obs.link import probe as real_probe

        probe = real_probe
    password = os.environ.get(obs.password_env, "")
    try:
        version = probe(obs.host, obs.port, password, obs.connect_timeout_seconds, obs.password_env)
    except ObsConnectError as e:
        if e.kind == "auth_failed":
            fix = f"export {obs.password_env}=<the password from OBS > Tools > WebSocket Server Settings>"
        else:
            fix = "start OBS and enable Tools > WebSocket Server Settings, or fix [obs] host/port"
        return Check("fail", "obs", str(e), fix)
    mode = " (dry run: nothing will be changed)" if obs.dry_run else ""
    return Check(
        "ok",
        "obs",
        f"connected to OBS {version.get('obsVersion', '?')} (obs-websocket "
        f"{version.get('obsWebSocketVersion', '?')}) at {obs.host}:{obs.port}; {len(rules)} rule(s){mode}",
    )


def check_saved_switches(config: Config) -> list[Check]:
    """Switches a moderator or producer left on in an earlier run: they hold after a restart."""
    from engine.statefile import read_json_object

    out: list[Check] = []
    if config.bot.enabled and config.bot.state_file:
        path = config.resolve(config.bot.state_file)
        saved = read_json_object(path, "bot moderation state") or {}
        held = []
        if saved.get("killed") is True:
            held.append("the kill switch is on: nothing will be posted")
        paused = saved.get("paused")
        if isinstance(paused, list) and paused:
            held.append(f"paused in {', '.join(str(r) for r in paused)}")
        off = sorted(k for k, m in (saved.get("modes") or {}).items() if m == "off")
        if off:
            held.append(f"types switched off: {', '.join(off)}")
        if held:
            fix = f'change it on the dashboard ("Chat bot" panel), or delete {path} to go back to config.toml'
            out.append(Check("warn", "bot", "saved from the last run: " + "; ".join(held), fix))
    if config.obs.enabled and config.obs.rules_state_file:
        path = config.resolve(config.obs.rules_state_file)
        saved = read_json_object(path, "OBS automation state") or {}
        if saved.get("paused") is True:
            fix = "`moodcast obs resume` or the dashboard's OBS panel once moodcast runs"
            out.append(Check("warn", "obs", "automation was left paused: it starts paused", fix))
    return out


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
        *check_saved_switches(config),
        *check_live_sources(config),
    ]
    for c in checks:
        out(f"  [{_MARK[c.status]}] {c.name}: {c.detail}")
        if c.fix:
            out(f"         fix: {c.fix}")
    failed = sum(c.status == "fail" for c in checks)
    out("all good." if not failed else f"{failed} problem(s) to fix.")
    return 1 if failed else 0
