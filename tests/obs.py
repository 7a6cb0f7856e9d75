"""A real OBS Studio (Debian's obs-studio, obs-websocket 5) under Xvfb, for the scene automation tests.

Each instance gets its own Xvfb display and a temporary HOME whose ``global.ini`` enables obs-websocket
(OBS 29 reads ``[OBSWebSocket]`` there) and marks the first-run wizard done. ``start()`` waits until the
websocket answers GetVersion; ``kill()`` is a crash (SIGKILL); ``start()`` again is a restart on the
same port, password and profile. Software rendering: Xvfb has no GPU, so Mesa's llvmpipe draws.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import obsws_python as obsws
from obsws_python.error import OBSSDKRequestError

from overlay.obs.link import ObsConnectError, probe
from tests.conftest import require_real

START_TIMEOUT = 90.0
"""Seconds OBS may take to answer on its websocket (first start builds its profile; 2 shared cores)."""
SCENES = ("Main", "Calm", "Producer")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def obs_available() -> bool:
    return shutil.which("obs") is not None and shutil.which("Xvfb") is not None


def require_obs() -> None:
    """Skip (or fail under CI) without obs-studio and xvfb."""
    require_real(
        "OBS Studio under Xvfb",
        obs_available(),
        "install them with `sudo apt-get install obs-studio xvfb`",
    )


def _global_ini(port: int, password: str) -> str:
    auth = "true" if password else "false"
    return f"""[General]
FirstRun=true
EnableAutoUpdates=false

[BasicWindow]
SysTrayEnabled=false
WarnBeforeStartingStream=false
WarnBeforeStoppingStream=false

[OBSWebSocket]
FirstLoad=false
ServerEnabled=true
ServerPort={port}
AlertsEnabled=false
AuthRequired={auth}
ServerPassword={password}
"""


@dataclass
class ObsStudio:
    """One OBS process (restartable) on its own display; where its websocket listens and its password."""

    workdir: Path
    password: str
    port: int = field(default_factory=_free_port)
    host: str = "127.0.0.1"
    display: str = ""
    proc: subprocess.Popen[bytes] | None = None
    xvfb: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def home(self) -> Path:
        return self.workdir / "home"

    @property
    def config_dir(self) -> Path:
        return self.home / ".config" / "obs-studio"

    @property
    def stdout_log(self) -> Path:
        return self.workdir / "obs-stdout.log"

    def _start_xvfb(self) -> None:
        r, w = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
            pass_fds=(w,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(w)
        with os.fdopen(r) as f:
            number = f.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not report a display number")
        self.display = f":{number}"

    def start(self) -> None:
        """Start (or restart) OBS and wait until its websocket answers GetVersion."""
        if self.xvfb is None:
            self._start_xvfb()
        self.config_dir.mkdir(parents=True, exist_ok=True)
        ini = self.config_dir / "global.ini"
        if not ini.exists():
            ini.write_text(_global_ini(self.port, self.password), encoding="utf-8")
        env = {
            **os.environ,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "DISPLAY": self.display,
            "LIBGL_ALWAYS_SOFTWARE": "1",
            "QT_QPA_PLATFORM": "xcb",
            # No sound server here: keep PulseAudio from trying to spawn one.
            "PULSE_SERVER": "unix:/nonexistent",
        }
        self.starts += 1
        log = self.stdout_log.open("ab")
        self.proc = subprocess.Popen(
            ["obs", "--minimize-to-tray", "--disable-shutdown-check", "--multi", "--disable-updater"],
            env=env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"OBS exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                probe(self.host, self.port, self.password, 2.0, "OBS_TEST_PASSWORD")
                return
            except ObsConnectError as e:
                last = str(e)
            time.sleep(0.3)
        raise RuntimeError(f"OBS did not answer on its websocket ({last}):\n{self.log_tail()}")

    def kill(self) -> None:
        """Crash OBS (SIGKILL), as a power cut or a frozen OBS killed by the producer would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        """Quit OBS and its display."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self.xvfb is not None:
            self.xvfb.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.xvfb.wait(10)
            self.xvfb = None

    def log_tail(self, lines: int = 40) -> str:
        """The end of OBS's output and of its newest log file (what to read when it will not start)."""
        parts = []
        if self.stdout_log.exists():
            parts += self.stdout_log.read_text(errors="replace").splitlines()[-lines:]
        logs = sorted((self.config_dir / "logs").glob("*.txt")) if (self.config_dir / "logs").is_dir() else []
        if logs:
            parts += [f"--- {logs[-1]}", *logs[-1].read_text(errors="replace").splitlines()[-lines:]]
        return "\n".join(parts)

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A request client of the test's own (the "producer"), closed after use."""
        c = obsws.ReqClient(host=self.host, port=self.port, password=self.password, timeout=5)
        try:
            yield c
        finally:
            c.disconnect()

    def program_scene(self) -> str:
        with self.client() as c:
            return str(c.send("GetCurrentProgramScene", raw=True)["currentProgramSceneName"])

    def set_scene(self, name: str) -> None:
        with self.client() as c:
            c.send("SetCurrentProgramScene", {"sceneName": name})

    def ensure_scenes(self, live: str = "Main") -> None:
        """Create the test scenes (kept if they exist) and make ``live`` the program scene."""
        with self.client() as c:
            for name in SCENES:
                try:
                    c.send("CreateScene", {"sceneName": name})
                except OBSSDKRequestError as e:
                    if e.code != 601:  # 601: already exists
                        raise
            c.send("SetCurrentProgramScene", {"sceneName": live})

    def ensure_text_source(self, scene: str, name: str, text: str, *, visible: bool = True) -> None:
        """A FreeType2 text source (what Linux OBS offers) in ``scene``, reset to ``text`` and ``visible``."""
        with self.client() as c:
            try:
                c.send(
                    "CreateInput",
                    {
                        "sceneName": scene,
                        "inputName": name,
                        "inputKind": "text_ft2_source_v2",
                        "inputSettings": {"text": text},
                        "sceneItemEnabled": visible,
                    },
                )
            except OBSSDKRequestError as e:
                if e.code != 601:  # 601: already exists
                    raise
            c.send("SetInputSettings", {"inputName": name, "inputSettings": {"text": text}})
            item = c.send("GetSceneItemId", {"sceneName": scene, "sourceName": name}, raw=True)["sceneItemId"]
            c.send(
                "SetSceneItemEnabled", {"sceneName": scene, "sceneItemId": item, "sceneItemEnabled": visible}
            )

    def input_text(self, name: str) -> str:
        with self.client() as c:
            return str(
                c.send("GetInputSettings", {"inputName": name}, raw=True)["inputSettings"].get("text", "")
            )

    def source_visible(self, scene: str, name: str) -> bool:
        with self.client() as c:
            item = c.send("GetSceneItemId", {"sceneName": scene, "sourceName": name}, raw=True)["sceneItemId"]
            got = c.send("GetSceneItemEnabled", {"sceneName": scene, "sceneItemId": item}, raw=True)
            return bool(got["sceneItemEnabled"])


@contextlib.contextmanager
def obs_studio(workdir: Path, password: str = "obs-test-secret") -> Iterator[ObsStudio]:
    """A started OBS with obs-websocket on a free port and the test scenes; stopped afterwards."""
    require_obs()
    studio = ObsStudio(workdir=workdir, password=password)
    try:
        studio.start()
        studio.ensure_scenes()
        yield studio
    finally:
        studio.stop()
