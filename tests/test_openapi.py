"""docs/openapi.yaml against a live ``moodcast run`` on loopback, with schemathesis: no 5xx, no crash,
bounded memory. Valid and invalid requests (schemathesis' positive and negative modes), each operation
with admin, ingest and no credentials. ``MOODCAST_API_EXAMPLES`` (default 15) sets examples per operation
and mode; raise it for a longer run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "openapi.yaml"
EXAMPLES = int(os.environ.get("MOODCAST_API_EXAMPLES", "15"))
ADMIN, INGEST = "openapi-admin-token", "openapi-ingest-token"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    tmp = tmp_path_factory.mktemp("openapi")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp / "c.toml").write_text(
        f'[server]\nport = {port}\n[store]\npath = "o.db"\n[obs]\nenabled = true\ndry_run = true\n'
        "reconnect_max_seconds = 2.0\n"
    )
    env = {**os.environ, "MOODCAST_ADMIN_TOKEN": ADMIN, "MOODCAST_INGEST_TOKEN": INGEST}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moodcast.cli", "run", "--config", "c.toml", "--no-sources"],
        cwd=tmp,
        env=env,
        stdout=(tmp / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        assert proc.poll() is None, (tmp / "server.log").read_text()
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.05)
    yield base, proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_openapi_document_covers_every_json_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every JSON route of the app as ``moodcast run`` builds is described (not pages, not socket.io)."""
    from dataclasses import replace

    from engine.config import Config, ObsConfig
    from moodcast.service import build_app, build_service

    monkeypatch.setenv("MOODCAST_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("MOODCAST_INGEST_TOKEN", INGEST)
    cfg = replace(Config(), base_dir=str(tmp_path), obs=ObsConfig(enabled=True, dry_run=True))
    app = build_app(build_service(cfg, with_sources=False))
    json_prefixes = ("/api/", "/dashboard/api/", "/predict", "/models", "/healthz")
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD" and r.resource.canonical.startswith(json_prefixes)
    }
    routes.discard(("get", "/api/ingest/ws"))  # a WebSocket, documented in the README
    spec = schemathesis.openapi.from_path(SPEC).raw_schema["paths"]
    described = {(m, path) for path, ops in spec.items() for m in ops}
    assert routes - described == set(), "routes missing from docs/openapi.yaml"
    assert described - routes == set(), "docs/openapi.yaml describes routes the app does not have"


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    base, proc = server
    schema = schemathesis.openapi.from_path(SPEC)
    http = requests.Session()
    # Load every model first (a second model is a one-off ~40 MB, not a leak), and let the bot finish
    # building jieba's dictionary (a one-off ~50 MB in a thread at start), then measure growth.
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for _ in range(600):
        if requests.get(f"{base}/api/bot/status", headers=admin, timeout=10).json().get("keywords_ready"):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the bot never finished loading jieba")
    models = requests.get(f"{base}/models", timeout=10).json()
    for m in models.get("models", []):
        requests.post(f"{base}/predict", json={"input_data": "好", "model_id": m["model_id"]}, timeout=30)
    rss_start = _rss_mb(proc.pid)
    failures: list[str] = []
    calls = 0
    credentials = [{"Authorization": f"Bearer {ADMIN}"}, {"Authorization": f"Bearer {INGEST}"}, {}]
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def check(case: schemathesis.Case) -> None:
                nonlocal calls
                headers = credentials[calls % len(credentials)]
                calls += 1
                response = case.call(base_url=base, session=http, headers=headers, timeout=10)
                if response.status_code >= 500:
                    where = f"{case.method} {case.formatted_path}"
                    failures.append(f"{where} -> {response.status_code}: {response.text[:200]}")

            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong in a request without inputs
        assert proc.poll() is None, f"the server died during {op.label}"
    rss_end = _rss_mb(proc.pid)
    rss = f"server RSS {rss_start:.0f} -> {rss_end:.0f} MB"
    print(f"schemathesis: {calls} requests, 5xx: {len(failures)}, {rss}")
    assert not failures, "\n".join(failures[:20])
    assert calls >= 25 * 2
    # Bounded memory: thousands of hostile requests leave the process about where it started.
    assert rss_end - rss_start < 40, (rss_start, rss_end)
    assert requests.get(f"{base}/healthz", timeout=5).json()["ok"] is True
