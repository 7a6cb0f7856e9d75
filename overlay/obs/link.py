"""One blocking obs-websocket v5 connection (obsws-python): call it only from the controller's worker thread.

obsws-python is synchronous. ``ObsLink.open`` connects a request client and an event client; the event
client's own thread calls ``on_scene`` for every program scene change and ``on_close`` once when the
socket ends (OBS quit, crashed or dropped us). Those callbacks must only enqueue.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, MutableMapping
from typing import Any

import obsws_python as obsws
from obsws_python.error import OBSSDKError, OBSSDKRequestError

from overlay.obs.director import ObsCommand

# obsws-python logs its connection parameters, password included, at INFO, and a traceback for every
# refused connection: keep it quiet; the controller reports connection trouble in its own words.
logging.getLogger("obsws_python").setLevel(logging.CRITICAL)


class ObsConnectError(Exception):
    """OBS could not be connected to; ``kind`` is "auth_failed" or "unreachable"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ObsRequestFailed(Exception):
    """OBS answered a request with an error (unknown scene or source...); the connection is fine."""


class ObsConnectionLost(Exception):
    """The connection broke during a request."""


def classify_connect_error(exc: BaseException, host: str, port: int, password_env: str) -> ObsConnectError:
    """Turn whatever obsws-python raised while connecting into a message that says what to fix."""
    where = f"obs-websocket at {host}:{port}"
    text = str(exc)
    if isinstance(exc, OBSSDKError) and "no password provided" in text:
        return ObsConnectError(
            "auth_failed", f"{where} requires a password, but ${password_env} is not set or empty"
        )
    if isinstance(exc, OBSSDKError) and not isinstance(exc, OBSSDKRequestError):
        # obs-websocket closes the socket (code 4009) on a wrong password; obsws-python then fails to parse
        # the identify reply, which is all it tells us.
        return ObsConnectError(
            "auth_failed",
            f"{where} refused the password (authentication failed): check ${password_env} against "
            "OBS > Tools > WebSocket Server Settings",
        )
    if isinstance(exc, ConnectionRefusedError):
        reason = "connection refused: is OBS running with its WebSocket server enabled?"
    elif isinstance(exc, TimeoutError) or "timed out" in text.lower():
        reason = "no answer (timed out)"
    else:
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return ObsConnectError("unreachable", f"cannot reach {where}: {reason}")


class ObsLink:
    """A request client plus an event client on one OBS; blocking methods."""

    def __init__(self, req: Any, events: Any) -> None:
        self._req = req
        self._events = events
        self._closed = False

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        password: str,
        timeout: float,
        *,
        password_env: str = "MOODCAST_OBS_PASSWORD",
        on_scene: Callable[[str], None],
        on_close: Callable[[], None],
    ) -> ObsLink:
        """Connect and identify both clients; raises ObsConnectError (auth_failed or unreachable)."""
        try:
            req = obsws.ReqClient(host=host, port=port, password=password, timeout=timeout)
        except Exception as e:  # obsws-python raises anything from socket errors to its own
            raise classify_connect_error(e, host, port, password_env) from None
        try:
            events = obsws.EventClient(host=host, port=port, password=password, timeout=timeout)
        except Exception as e:
            req.disconnect()
            raise classify_connect_error(e, host, port, password_env) from None

        def on_current_program_scene_changed(data: Any) -> None:
            # obsws-python dispatches by this function's name.
            on_scene(str(data.scene_name))

        events.callback.register(on_current_program_scene_changed)
        link = cls(req, events)

        def watch() -> None:
            events.worker.join()  # ends when the socket closes, whoever closed it
            on_close()

        threading.Thread(target=watch, name="moodcast-obs-watch", daemon=True).start()
        return link

    def _send(self, request: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            out = self._req.send(request, data, raw=True)
        except OBSSDKRequestError as e:
            raise ObsRequestFailed(str(e)) from None
        except Exception as e:  # socket closed, broken pipe, timeout: the link is gone
            raise ObsConnectionLost(f"{request}: {type(e).__name__}: {e}") from None
        return dict(out or {})

    def version(self) -> dict[str, Any]:
        """GetVersion's answer (obsVersion, obsWebSocketVersion, ...)."""
        return self._send("GetVersion")

    def current_scene(self) -> str:
        """The current program scene's name."""
        return str(self._send("GetCurrentProgramScene").get("currentProgramSceneName", ""))

    def execute(self, cmd: ObsCommand, saved_text: MutableMapping[str, str]) -> None:
        """Perform one command; ``saved_text`` keeps texts that set_text replaced, for restore_text."""
        if cmd.kind == "switch_scene":
            self._send("SetCurrentProgramScene", {"sceneName": cmd.scene})
        elif cmd.kind == "source_visibility":
            item = self._send("GetSceneItemId", {"sceneName": cmd.scene, "sourceName": cmd.source})
            self._send(
                "SetSceneItemEnabled",
                {"sceneName": cmd.scene, "sceneItemId": item["sceneItemId"], "sceneItemEnabled": cmd.visible},
            )
        elif cmd.kind == "set_text":
            if cmd.key and cmd.key not in saved_text:
                settings = self._send("GetInputSettings", {"inputName": cmd.source}).get("inputSettings", {})
                saved_text[cmd.key] = str(settings.get("text", ""))
            self._send("SetInputSettings", {"inputName": cmd.source, "inputSettings": {"text": cmd.text}})
        elif cmd.kind == "restore_text":
            if cmd.key in saved_text:
                old = saved_text.pop(cmd.key)
                self._send("SetInputSettings", {"inputName": cmd.source, "inputSettings": {"text": old}})
        elif cmd.kind == "vendor_request":
            self._send(
                "CallVendorRequest",
                {"vendorName": cmd.vendor, "requestType": cmd.request, "requestData": dict(cmd.data)},
            )
        elif cmd.kind == "broadcast_event":
            self._send("BroadcastCustomEvent", {"eventData": dict(cmd.data)})

    def close(self) -> None:
        """Close both sockets; the watcher then reports the close."""
        if self._closed:
            return
        self._closed = True
        for client in (self._req, self._events):
            with contextlib.suppress(Exception):  # already gone
                client.disconnect()


def probe(host: str, port: int, password: str, timeout: float, password_env: str) -> dict[str, Any]:
    """Connect, ask GetVersion, disconnect (``moodcast doctor``); raises ObsConnectError."""
    try:
        req = obsws.ReqClient(host=host, port=port, password=password, timeout=timeout)
    except Exception as e:
        raise classify_connect_error(e, host, port, password_env) from None
    try:
        return dict(req.send("GetVersion", raw=True) or {})
    except Exception as e:
        raise classify_connect_error(e, host, port, password_env) from None
    finally:
        req.disconnect()
