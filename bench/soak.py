"""Load and soak driver: the room simulator drives a whole ``moodcast run`` process over HTTP and WebSocket.

    python -m bench.soak --phases 1000:1800 --out var/soak/steady.jsonl        # 30 min at 1,000 msgs/s
    python -m bench.soak --phases 2000:30,4000:30,6000:30,8000:30              # find the capacity
    python -m bench.soak --phases 1000:60,9000:60,1000:120     # a peak beyond capacity, then recovery

The server is a separate process (``python -m moodcast.cli run --no-sources``) with everything on: ingest
(journaled), classification, SQLite store, the socket.io broadcaster with ``--clients`` overlay clients
(each joined with the room's overlay token, as OBS does), the chat bot with the console sender, and the
OBS controller in dry-run with one rule. Half the offered load is POSTed to ``/api/ingest``, half sent as
frames on ``/api/ingest/ws``; the load is open-loop (sent on schedule whatever the replies), so beyond
capacity the refusals (503 + Retry-After, counted) show the designed degradation.

Every ``--interval`` seconds one JSON line goes to ``--out``: offered/accepted/refused messages, the
server's RSS and CPU, p50/p99 ingest-to-broadcast latency of that interval, and the server's queue and
drop counters. A message's latency is the arrival of the first socket.io update whose ``total_messages``
covers it minus the moment its batch was sent (snapshots are periodic, so the snapshot period is part of it).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from engine.sources.simulator import Simulator, parse_script
from overlay.tokens import OverlayTokens

ROOM = "soak"
SCRIPT = (
    "users=20000 moderators=3; "
    "chat 10m 100/s neutral=5 happy=3 excited=2 angry=1 sad=1 anxious=1 spam=2 flood=2; "
    "chat 2m 100/s angry=5 anxious=2 neutral=1"
)
TICK_S = 0.02
INGEST_TOKEN = "soak-ingest-token"
ADMIN_TOKEN = "soak-admin-token"


def server_config(port: int, hz: float, rate_limit: float) -> str:
    """The server's config: everything on; OBS dry-run with one rule; bot with the console sender."""
    return f"""
[server]
port = {port}
[store]
path = "soak.db"
[aggregate]
snapshot_hz = {hz}
[ingest]
rate_limit_per_second = {rate_limit}
[bot]
enabled = true
sender = "console"
[obs]
enabled = true
dry_run = true
reconnect_max_seconds = 5.0
[[obs.rules]]
name = "anger"
metric = "negative_share"
threshold = 0.3
for_seconds = 2.0
exit_threshold = 0.2
calm_seconds = 5.0
cooldown_seconds = 10.0
[[obs.rules.actions]]
type = "switch_scene"
scene = "Calm"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def parse_phases(text: str) -> list[tuple[float, float]]:
    """``"1000:60,5000:30"`` -> [(1000 msgs/s, 60 s), (5000 msgs/s, 30 s)]."""
    out = []
    for part in text.split(","):
        rate, _, secs = part.strip().partition(":")
        out.append((float(rate), float(secs)))
    return out


class Bodies:
    """The simulator's script as JSON batches, in script order and looping, at whatever rate is asked.

    At 1,000 msgs/s the 12-minute script (written at 100/s) plays in 72 s, its angry phase for 12 s of
    them, so the OBS rule and the bot see the room turn and calm down again during a run.
    """

    def __init__(self, seed: int = 1) -> None:
        script = parse_script(SCRIPT, default_rate=100)
        sim = Simulator(script, seed=seed, room=ROOM)
        self._msgs = [
            {"room": ROOM, "user": m.user, "text": m.text, "is_moderator": m.is_moderator}
            for m, _ in sim.iter_messages(72_000)
        ]
        self._next = 0

    def get(self, n: int) -> str:
        i, total = self._next, len(self._msgs)
        batch = [self._msgs[(i + k) % total] for k in range(n)]
        self._next = (i + n) % total
        return json.dumps({"messages": batch}, ensure_ascii=False)


@dataclass
class Totals:
    offered: int = 0
    accepted: int = 0
    refused_503: int = 0
    refused_429: int = 0
    errors: int = 0
    late_ticks: int = 0
    # (send time, accepted count) in acknowledgement order = the order the server emitted them.
    acks: list[tuple[float, int]] = field(default_factory=list)


@dataclass
class Overlays:
    updates: list[tuple[float, int]] = field(default_factory=list)  # the probe client's updates
    per_client: list[int] = field(default_factory=list)
    disconnects: int = 0
    clients: list[Any] = field(default_factory=list)


async def connect_overlays(base: str, token: str, n: int) -> Overlays:
    """``n`` socket.io clients on the room's /mood namespace; client 0 records every update for latency."""
    ov = Overlays(per_client=[0] * n)
    for i in range(n):
        sio = socketio.AsyncClient(reconnection=True, reconnection_delay=0.5)

        def make(i: int) -> Any:
            async def on_update(data: dict[str, Any]) -> None:
                ov.per_client[i] += 1
                if i == 0:
                    ov.updates.append((time.monotonic(), int(data.get("total_messages", 0))))

            return on_update

        sio.on("mood", make(i), namespace="/mood")
        sio.on("snapshot", make(i), namespace="/mood")

        async def on_disconnect(*_a: Any) -> None:
            ov.disconnects += 1

        sio.on("disconnect", on_disconnect, namespace="/mood")
        await sio.connect(
            base, namespaces=["/mood"], auth={"room": ROOM, "token": token}, transports=["websocket"]
        )
        ov.clients.append(sio)
    return ov


async def http_sender(
    http: aiohttp.ClientSession, base: str, bodies: Bodies, totals: Totals, n: int, inflight: set[Any]
) -> None:
    t = time.monotonic()
    try:
        async with http.post(
            f"{base}/api/ingest", data=bodies.get(n).encode(), headers={"Content-Type": "application/json"}
        ) as r:
            await r.read()
            if r.status == 202:
                totals.accepted += n
                totals.acks.append((t, n))
            elif r.status == 503:
                totals.refused_503 += n
            elif r.status == 429:
                totals.refused_429 += n
            else:
                totals.errors += n
    except aiohttp.ClientError:
        totals.errors += n


async def drive(
    base: str, phases: list[tuple[float, float]], totals: Totals, bodies: Bodies, stop: asyncio.Event
) -> None:
    """Open-loop load: every tick, half the tick's messages by HTTP POST, half by a WebSocket frame."""
    headers = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    conn = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(headers=headers, connector=conn) as http:
        ws = await http.ws_connect(f"{base}/api/ingest/ws")
        ws_sent: list[tuple[float, int]] = []

        async def ws_reader() -> None:
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                t, n = ws_sent.pop(0)
                reply = json.loads(frame.data)
                if reply.get("ok"):
                    totals.accepted += n
                    totals.acks.append((t, n))
                elif "over capacity" in reply.get("error", ""):
                    totals.refused_503 += n
                elif "rate limit" in reply.get("error", ""):
                    totals.refused_429 += n
                else:
                    totals.errors += n

        reader = asyncio.create_task(ws_reader())
        inflight: set[asyncio.Task[None]] = set()
        carry = 0.0
        t0 = time.monotonic()
        k = 0
        for rate, seconds in phases:
            end = t0 + k * TICK_S + seconds
            while t0 + k * TICK_S < end and not stop.is_set():
                target = t0 + k * TICK_S
                k += 1
                delay = target - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.1:
                    totals.late_ticks += 1
                carry += rate * TICK_S
                n = int(carry)
                carry -= n
                if n <= 0:
                    continue
                totals.offered += n
                half = n // 2
                if half:
                    ws_sent.append((time.monotonic(), half))
                    await ws.send_str(bodies.get(half))
                rest = n - half
                if len(inflight) >= 256:  # the client cannot keep up either: count, do not queue
                    totals.errors += rest
                    continue
                task = asyncio.create_task(http_sender(http, base, bodies, totals, rest, inflight))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
        if inflight:
            await asyncio.wait(inflight, timeout=30)
        await asyncio.sleep(1.0)
        await ws.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(reader, 5)


def latencies(
    acks: list[tuple[float, int]], updates: list[tuple[float, int]], lo_t: float, hi_t: float
) -> list[float]:
    """Latency of each acknowledged batch sent in [lo_t, hi_t): time to the first update covering it."""
    times = [u[0] for u in updates]
    counts = [u[1] for u in updates]
    out = []
    cum = 0
    for t, n in acks:
        cum += n
        if not (lo_t <= t < hi_t):
            continue
        j = bisect.bisect_left(counts, cum)
        if j < len(counts):
            out.append(max(0.0, times[j] - t))
    return out


def quantile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100)[int(q * 100) - 1]


async def monitor(
    proc: subprocess.Popen[bytes],
    base: str,
    totals: Totals,
    ov: Overlays,
    interval: float,
    out: Any,
    stop: asyncio.Event,
    t_start: float,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    last_cpu = proc_cpu_seconds(proc.pid)
    last_t = time.monotonic()
    last = Totals()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            now = time.monotonic()
            try:
                async with http.get(f"{base}/healthz") as r:
                    stats = (await r.json())["stats"]
            except (aiohttp.ClientError, ValueError):
                stats = {}
            cpu = proc_cpu_seconds(proc.pid)
            lat = latencies(totals.acks, ov.updates, last_t - 2 * interval, last_t - interval)
            store = stats.get("store", {}) or {}
            ingest = stats.get("ingest", {}) or {}
            row = {
                "t": round(now - t_start, 1),
                "offered": totals.offered - last.offered,
                "accepted": totals.accepted - last.accepted,
                "refused_503": totals.refused_503 - last.refused_503,
                "refused_429": totals.refused_429 - last.refused_429,
                "errors": totals.errors - last.errors,
                "rss_mb": round(proc_rss_mb(proc.pid), 1),
                "cpu": round((cpu - last_cpu) / (now - last_t), 2),
                # Latency of the batches sent one interval earlier: their updates have arrived by now.
                "lat_p50_ms": round(1000 * quantile(lat, 0.5), 1),
                "lat_p99_ms": round(1000 * quantile(lat, 0.99), 1),
                "queued": stats.get("queued"),
                "dropped": stats.get("dropped"),
                "classified": stats.get("classified"),
                "stored": store.get("written_messages"),
                "store_pending": store.get("pending_messages"),
                "store_lost": store.get("lost_messages"),
                "journal_errors": ingest.get("journal_errors"),
                "overlay_updates_min": min(ov.per_client) if ov.per_client else 0,
                "overlay_disconnects": ov.disconnects,
            }
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), file=sys.stderr, flush=True)
            last = Totals(
                totals.offered, totals.accepted, totals.refused_503, totals.refused_429, totals.errors
            )
            last_cpu, last_t = cpu, now
            if stop.is_set():
                return rows


async def run(args: argparse.Namespace) -> dict[str, Any]:
    phases = parse_phases(args.phases)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="moodcast-soak-", dir=args.workdir)).resolve()  # noqa: ASYNC240
    conf = workdir / "soak.toml"
    conf.write_text(server_config(port, args.hz, args.rate_limit))
    token = OverlayTokens(workdir / "var" / "overlay-tokens.json").get_or_create(ROOM)
    env = {**os.environ, "MOODCAST_INGEST_TOKEN": INGEST_TOKEN, "MOODCAST_ADMIN_TOKEN": ADMIN_TOKEN}
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moodcast.cli", "run", "--config", str(conf), "--no-sources"],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    totals = Totals()
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"server did not start; see {workdir / 'server.log'}")
        ov = await connect_overlays(base, token, args.clients)
        bodies = Bodies()
        t_start = time.monotonic()
        with out_path.open("w") as out:  # noqa: ASYNC230 - one small line per interval
            mon = asyncio.create_task(monitor(proc, base, totals, ov, args.interval, out, stop, t_start))
            await drive(base, phases, totals, bodies, stop)
            # Let the last updates arrive, then take the final sample.
            await asyncio.sleep(args.interval)
            stop.set()
            rows = await mon
        disconnects = ov.disconnects  # before our own disconnects below
        for c in ov.clients:
            with contextlib.suppress(Exception):
                await c.disconnect()
        all_lat = latencies(totals.acks, ov.updates, 0.0, float("inf"))
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(proc.wait, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    tail = (workdir / "server.log").read_text(errors="replace").strip().splitlines()[-2:]
    summary = {
        "phases": args.phases,
        "clients": args.clients,
        "offered": totals.offered,
        "accepted": totals.accepted,
        "refused_503": totals.refused_503,
        "refused_429": totals.refused_429,
        "errors": totals.errors,
        "late_ticks": totals.late_ticks,
        "lat_p50_ms": round(1000 * quantile(all_lat, 0.5), 1),
        "lat_p99_ms": round(1000 * quantile(all_lat, 0.99), 1),
        "lat_max_ms": round(1000 * max(all_lat), 1) if all_lat else None,
        "rss_first_mb": rows[0]["rss_mb"] if rows else None,
        "rss_max_mb": max(r["rss_mb"] for r in rows) if rows else None,
        "rss_last_mb": rows[-1]["rss_mb"] if rows else None,
        "server_dropped": rows[-1]["dropped"] if rows else None,
        "stored": rows[-1]["stored"] if rows else None,
        "overlay_updates_min": min(ov.per_client) if ov.per_client else 0,
        "overlay_updates_max": max(ov.per_client) if ov.per_client else 0,
        "overlay_disconnects": disconnects,
        "server_exit": rc,
        "server_summary": tail,
        "workdir": str(workdir),
    }
    with out_path.open("a") as out:  # noqa: ASYNC230
        out.write(json.dumps({"summary": summary}, ensure_ascii=False) + "\n")
    return summary


def render(path: Path, every: float) -> str:
    """A markdown summary of one run's JSON lines: totals, then one row per ``every`` seconds."""
    rows, summary = [], {}
    for line in path.read_text().splitlines():
        obj = json.loads(line)
        if "summary" in obj:
            summary = obj["summary"]
        else:
            rows.append(obj)
    s = summary
    out = [
        f"`{path.name}`: phases {s.get('phases')} (msgs/s:seconds), {s.get('clients')} overlay clients. "
        f"Offered {s.get('offered', 0):,}, acknowledged {s.get('accepted', 0):,}, refused 503 "
        f"{s.get('refused_503', 0):,}, refused 429 {s.get('refused_429', 0):,}, "
        f"client errors {s.get('errors', 0)}; "
        f"server dropped {s.get('server_dropped')}, stored {s.get('stored', 0):,}; latency p50 "
        f"{s.get('lat_p50_ms')} ms, p99 {s.get('lat_p99_ms')} ms, max {s.get('lat_max_ms')} ms; RSS first "
        f"{s.get('rss_first_mb')} MB, max {s.get('rss_max_mb')} MB, last {s.get('rss_last_mb')} MB; overlay "
        f"updates per client {s.get('overlay_updates_min')}..{s.get('overlay_updates_max')}, unplanned "
        f"disconnects {s.get('overlay_disconnects')}; server exit status {s.get('server_exit')}.",
        "",
        "| t (s) | offered/s | acked/s | refused/s | RSS MB | server CPU | p50 ms | p99 ms | inbox queued "
        "| dropped (total) | stored (total) | store backlog |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    next_t = 0.0
    for i, r in enumerate(rows):
        if r["t"] + 1e-6 < next_t and i != len(rows) - 1:
            continue
        next_t = r["t"] + every
        span = r["t"] - (rows[i - 1]["t"] if i else 0.0) or 1.0
        refused = r["refused_503"] + r["refused_429"] + r["errors"]
        out.append(
            f"| {r['t']:.0f} | {r['offered'] / span:,.0f} | {r['accepted'] / span:,.0f} "
            f"| {refused / span:,.0f} "
            f"| {r['rss_mb']} | {r['cpu']:.0%} | {r['lat_p50_ms']} | {r['lat_p99_ms']} | {r['queued']} "
            f"| {r['dropped']} | {r['stored']:,} | {r['store_pending']} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--render", type=Path, help="print a markdown summary of this run's JSON lines and exit")
    p.add_argument("--every", type=float, default=0.0, help="--render: seconds between table rows")
    p.add_argument("--phases", default="1000:60", help="rate:seconds,... offered msgs/s and how long")
    p.add_argument("--clients", type=int, default=50, help="socket.io overlay clients")
    p.add_argument("--hz", type=float, default=4.0, help="[aggregate] snapshot_hz of the server")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--rate-limit", type=float, default=0.0, help="server's ingest rate limit (0 = off)")
    p.add_argument("--out", default="var/soak/soak.jsonl", help="JSON lines: one sample per interval")
    p.add_argument("--workdir", default=None, help="where the server's temporary directory goes")
    args = p.parse_args()
    if args.render:
        print(render(args.render, args.every))
        return
    summary = asyncio.run(run(args))
    print(json.dumps(summary, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
