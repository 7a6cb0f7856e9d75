"""Scene automation against a real OBS Studio (obs-websocket 5) under Xvfb, driven by the real pipeline.

Chat goes through Pipeline with the keyword model (退钱 = angry), so the spikes are deterministic; the
controller talks to OBS exactly as in production. The producer's manual switch is a second websocket
client of the test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine.config import (
    ClassifierConfig,
    Config,
    ObsActionConfig,
    ObsConfig,
    ObsRuleConfig,
    StoreConfig,
)
from engine.pipeline import Pipeline
from engine.rules import compile_rules
from engine.store import Store, StoreWriter
from engine.types import ChatMessage
from moodcast.doctor import check_obs
from overlay.obs.controller import ObsController
from tests.fake_model import FakeRegistry
from tests.obs import ObsStudio, obs_studio

pytestmark = pytest.mark.slow

ROOM = "shop"
ANGER = ObsRuleConfig(
    name="anger",
    room=ROOM,
    metric="negative_share",
    window=10,
    threshold=0.5,
    exit_threshold=0.3,
    for_seconds=0.5,
    calm_seconds=1.0,
    cooldown_seconds=0.0,
    min_messages=5,
    actions=(ObsActionConfig(type="switch_scene", scene="Calm"),),
)
_ids = itertools.count()


@pytest.fixture(scope="module")
def obs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObsStudio]:
    """One OBS for the module's tests that do not kill it."""
    with obs_studio(tmp_path_factory.mktemp("obs")) as studio:
        yield studio


def _config(studio: ObsStudio, **obs: Any) -> Config:
    cfg = ObsConfig(
        enabled=True,
        host=studio.host,
        port=studio.port,
        min_dwell_seconds=0.5,
        max_switches_per_minute=30,
        connect_timeout_seconds=3.0,
        rules=(ANGER,),
    )
    return replace(Config(), classifier=ClassifierConfig(model="kw"), obs=replace(cfg, **obs))


class Running:
    """The pipeline and the OBS controller running, plus helpers to push chat and wait for things."""

    def __init__(self, pipe: Pipeline, ctl: ObsController) -> None:
        self.pipe = pipe
        self.ctl = ctl

    def say(self, text: str, n: int) -> None:
        for _ in range(n):
            i = next(_ids)
            self.pipe.submit(ChatMessage.create(room=ROOM, user=f"viewer{i}", text=f"{text} {i}"))

    def kinds(self) -> list[str]:
        return [e["kind"] for e in self.ctl.recent]


@contextlib.asynccontextmanager
async def automation(config: Config, password: str, tmp_path: Path) -> AsyncIterator[Running]:
    """Pipeline + store writer + controller, as the service wires them (snapshot hub -> controller)."""
    pipe = Pipeline(config, FakeRegistry().get)
    writer = StoreWriter(
        tmp_path / "moodcast.db",
        StoreConfig(flush_ms=50),
        pipe.classified.subscribe("store"),
        pipe.events.subscribe("store"),
    )
    await writer.open()
    ctl = ObsController(
        config.obs,
        compile_rules(config.obs.rules),
        password=password,
        publish=pipe.publish_event,
        backoff=lambda retry, total: 0.3,
    )
    tasks = [
        asyncio.create_task(writer.run()),
        asyncio.create_task(pipe.run()),
        asyncio.create_task(ctl.run(pipe.snapshots.subscribe("obs"))),
    ]
    try:
        yield Running(pipe, ctl)
    finally:
        for t in tasks[1:]:
            t.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        await writer.close()
        tasks[0].cancel()
        await asyncio.gather(tasks[0], return_exceptions=True)


async def eventually(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check`` (run in a thread: it may talk to OBS) until it returns something truthy."""
    # A generous bound so a broken feature fails instead of hanging; not a performance assertion.
    deadline = asyncio.get_running_loop().time() + 30.0
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what} (last: {last!r})")


async def test_negative_spike_switches_the_scene_and_calm_brings_it_back(
    obs: ObsStudio, tmp_path: Path
) -> None:
    obs.ensure_scenes(live="Main")
    async with automation(_config(obs), obs.password, tmp_path) as run:
        await eventually(lambda: run.ctl.state == "connected", "the controller to connect")
        run.say("主播好", 10)  # a calm room first: nothing must happen
        await asyncio.sleep(1.0)
        assert obs.program_scene() == "Main"
        run.say("退钱！骗子", 40)
        await eventually(lambda: obs.program_scene() == "Calm", "OBS to cut to the Calm scene")
        run.say("包邮吗", 400)  # anger drowned out: 40 of 450 in the window
        await eventually(lambda: obs.program_scene() == "Main", "OBS to come back to Main")
        kinds = run.kinds()
        assert kinds.index("rule_fired") < kinds.index("obs_action") < kinds.index("rule_ended")
        assert kinds.count("obs_action") == 2  # the cut and the way back, nothing more
    store = Store.open(tmp_path / "moodcast.db")
    try:
        stored = store.events(ROOM)
    finally:
        store.close()
    actions = [e for e in stored if e.kind == "obs_action"]
    assert [a.message.split(" (")[0] for a in actions] == [
        "switch program scene to 'Calm'",
        "switch program scene to 'Main'",
    ]
    fired = next(e for e in stored if e.kind == "rule_fired")
    assert fired.values["negative_share"] >= 0.5 and fired.values["messages"] >= 5  # the reason, stored


async def test_spike_sets_a_text_and_shows_a_source_then_restores_both(
    obs: ObsStudio, tmp_path: Path
) -> None:
    obs.ensure_scenes(live="Main")
    obs.ensure_text_source("Main", "Banner", "欢迎来到直播间")
    obs.ensure_text_source("Main", "CalmCard", "稍等，主播马上回应", visible=False)
    rule = replace(
        ANGER,
        actions=(
            ObsActionConfig(type="set_text", source="Banner", text="大家别急 ({percent} 不满)"),
            ObsActionConfig(type="source_visibility", scene="Main", source="CalmCard", visible=True),
        ),
    )
    async with automation(_config(obs, rules=(rule,)), obs.password, tmp_path) as run:
        await eventually(lambda: run.ctl.state == "connected", "the controller to connect")
        run.say("退钱！骗子", 40)
        await eventually(lambda: obs.source_visible("Main", "CalmCard"), "the calm card to be shown")
        text = await eventually(
            lambda: obs.input_text("Banner").startswith("大家别急") and obs.input_text("Banner"),
            "the banner text",
        )
        assert text.endswith("% 不满)") and "{percent}" not in text  # filled with the live share
        assert obs.program_scene() == "Main"  # only the actions asked for
        run.say("包邮吗", 400)
        await eventually(lambda: obs.input_text("Banner") == "欢迎来到直播间", "the banner's own text back")
        await eventually(lambda: not obs.source_visible("Main", "CalmCard"), "the calm card hidden again")
        assert run.kinds().count("obs_action") == 4  # text + card on the spike, and both reverted


async def test_a_manual_switch_during_a_spike_is_respected(obs: ObsStudio, tmp_path: Path) -> None:
    obs.ensure_scenes(live="Main")
    async with automation(_config(obs), obs.password, tmp_path) as run:
        await eventually(lambda: run.ctl.state == "connected", "the controller to connect")
        run.say("退钱", 40)
        await eventually(lambda: obs.program_scene() == "Calm", "the automatic cut to Calm")
        await asyncio.to_thread(obs.set_scene, "Producer")  # the producer takes over
        await eventually(lambda: "obs_note" in run.kinds(), "the controller to notice the manual switch")
        run.say("退钱 还在生气", 40)  # still angry, well past the dwell time: no switch back to Calm
        await asyncio.sleep(2.0)
        assert obs.program_scene() == "Producer"
        run.say("包邮吗", 600)
        await eventually(lambda: "rule_ended" in run.kinds(), "the rule to end")
        await asyncio.sleep(1.5)  # several snapshots after the end: still the producer's scene
        assert obs.program_scene() == "Producer"
        assert run.kinds().count("obs_action") == 1
        note = next(e for e in run.ctl.recent if e["kind"] == "obs_note")
        assert "producer switched to 'Producer'" in note["message"]


async def test_obs_killed_and_restarted_is_reconnected_and_automation_resumes(tmp_path: Path) -> None:
    with obs_studio(tmp_path / "obs") as studio:
        async with automation(_config(studio), studio.password, tmp_path) as run:
            await eventually(lambda: run.ctl.state == "connected", "the first connection")
            await asyncio.to_thread(studio.kill)
            await eventually(lambda: run.ctl.state == "reconnecting", "the controller to notice OBS died")
            run.say("主播好", 5)  # the rest of moodcast keeps running meanwhile
            assert await run.pipe.drain(5)
            await asyncio.to_thread(studio.start)
            await eventually(lambda: run.ctl.state == "connected", "the reconnection")
            assert run.ctl.counters["connects"] == 2
            await asyncio.to_thread(studio.ensure_scenes, "Main")
            run.say("退钱", 40)
            await eventually(lambda: studio.program_scene() == "Calm", "automation to work after the restart")
            states = [e["message"] for e in run.ctl.recent if e["kind"] == "obs_state"]
            assert any("reconnecting" in s for s in states)


async def test_a_wrong_password_is_reported_and_moodcast_keeps_running(
    obs: ObsStudio, tmp_path: Path
) -> None:
    async with automation(_config(obs), "not-the-password", tmp_path) as run:
        await eventually(lambda: run.ctl.state == "auth_failed", "the auth failure to be reported")
        assert "refused the password" in run.ctl.detail
        assert "MOODCAST_OBS_PASSWORD" in run.ctl.detail
        assert "not-the-password" not in run.ctl.detail
        run.say("退钱", 20)
        assert await run.pipe.drain(5)
        assert run.pipe.latest(ROOM) is not None
        # The rule still decides and the decision is logged; with no OBS there is no scene to change.
        await eventually(lambda: "rule_fired" in run.kinds(), "the decision to be logged")
        assert "obs_action" not in run.kinds()


def test_doctor_connects_and_tells_wrong_password_from_unreachable(
    obs: ObsStudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(obs)
    monkeypatch.setenv(cfg.obs.password_env, obs.password)
    ok = check_obs(cfg)
    assert ok.status == "ok" and "connected to OBS 2" in ok.detail and "1 rule(s)" in ok.detail
    monkeypatch.setenv(cfg.obs.password_env, "wrong")
    bad = check_obs(cfg)
    assert bad.status == "fail" and "refused the password" in bad.detail
    monkeypatch.delenv(cfg.obs.password_env)
    missing = check_obs(cfg)
    assert missing.status == "fail" and "is not set" in missing.detail
    gone = check_obs(replace(cfg, obs=replace(cfg.obs, port=1)))
    assert gone.status == "fail" and "cannot reach" in gone.detail and "refused" in gone.detail
