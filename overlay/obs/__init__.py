"""OBS scene automation: mood rules drive obs-websocket v5 (see controller.py, director.py, web.py)."""

from __future__ import annotations

import os
from collections.abc import Callable

from aiohttp import web

from engine.config import Config
from engine.rules import compile_rules
from engine.types import TriggerEvent


def obs_setup(config: Config, publish: Callable[[TriggerEvent], None]) -> Callable[[web.Application], None]:
    """An ``extra_setup`` for ``create_app``: the OBS endpoints and panel, and the controller if enabled.

    Raises ConfigError for invalid rules, so a typo stops start-up instead of a rule never firing.
    """
    from overlay.obs.controller import ObsController
    from overlay.obs.web import setup

    obs = config.obs
    rules = compile_rules(obs.rules)
    controller = None
    if obs.enabled:
        controller = ObsController(
            obs,
            rules,
            password=os.environ.get(obs.password_env, ""),
            publish=publish,
            state_file=config.resolve(obs.rules_state_file) if obs.rules_state_file else None,
        )
    return lambda app: setup(app, controller)
