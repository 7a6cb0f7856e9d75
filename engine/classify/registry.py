"""Finds the .onnx models (bundled in engine/models plus extra folders) and loads each one once."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from engine.classify.base import EmotionModel, ModelError, ModelInfo
from engine.classify.onnx_model import OnnxEmotionModel

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models"
"""Package data: the models that ship in the wheel."""
DEFAULT_ID = "fast"


class ModelRegistry:
    """Model ids are file stems; a later folder's model shadows an earlier one of the same id.

    The bundled folder comes first, so a user's retrained ``fast.onnx`` in an extra folder wins.
    """

    default_id = DEFAULT_ID

    def __init__(self, dirs: Sequence[Path] = (), *, bundled: Path | None = BUNDLED_DIR) -> None:
        self._lock = threading.Lock()
        self._dirs = ([bundled] if bundled is not None else []) + [Path(x) for x in dirs]
        self._paths: dict[str, Path] = {}
        self._explicit: dict[str, Path] = {}
        self._loaded: dict[str, EmotionModel] = {}
        self._paths = self._scan()

    def _scan(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for d in self._dirs:
            if d.is_dir():
                for p in sorted(d.glob("*.onnx")):
                    found[p.stem] = p.resolve()
        return found

    def refresh(self) -> list[str]:
        """Rescan the folders, so a model trained while the service runs is usable without a restart.

        Returns the ids that appeared. A model whose file changed is reloaded on its next ``get``; one
        already handed out keeps working for whoever holds it (hot swap, not yank).
        """
        found = self._scan()
        with self._lock:
            found.update(self._explicit)
            new = sorted(set(found) - set(self._paths))
            for mid, p in found.items():
                if self._paths.get(mid) != p:
                    self._loaded.pop(mid, None)
            for mid in set(self._paths) - set(found):
                self._loaded.pop(mid, None)
            self._paths = found
        return new

    def ids(self) -> list[str]:
        """Known model ids, sorted."""
        with self._lock:
            return sorted(self._paths)

    def path(self, model_id: str) -> Path:
        """The file behind an id; ModelError naming the known ids if there is none."""
        with self._lock:
            p = self._paths.get(model_id)
            known = sorted(self._paths)
        if p is None:
            raise ModelError(f"unknown model {model_id!r}; known models: {', '.join(known) or '(none)'}")
        return p

    def register(self, path: Path | str, model_id: str | None = None) -> str:
        """Add (or replace) a model file, e.g. one just trained; returns its id. Loads lazily."""
        p = Path(path).resolve()
        if not p.is_file():
            raise ModelError(f"model file {p} not found")
        mid = model_id or p.stem
        with self._lock:
            self._paths[mid] = p
            self._explicit[mid] = p
            self._loaded.pop(mid, None)
        return mid

    def get(self, model_id_or_path: str | Path | None = None) -> EmotionModel:
        """The loaded model for an id (default ``fast``) or a path to an .onnx file; loaded once."""
        key = self.default_id if model_id_or_path is None else model_id_or_path
        if isinstance(key, Path) or key.endswith(".onnx"):
            key = self._id_for_path(Path(key))
        with self._lock:
            model = self._loaded.get(key)
            if model is not None:
                return model
            unknown = key not in self._paths
        if unknown:
            # Perhaps trained since start-up (moodcast train --out models_dir): look once more.
            self.refresh()
        with self._lock:
            model = self._loaded.get(key)
            if model is not None:
                return model
            path = self._paths.get(key)
            known = sorted(self._paths)
            if path is None:
                raise ModelError(f"unknown model {key!r}; known models: {', '.join(known) or '(none)'}")
            # Loading under the lock: two threads asking at once must not build two sessions.
            model = OnnxEmotionModel(path, model_id=key)
            self._loaded[key] = model
            return model

    def infos(self) -> list[ModelInfo]:
        """Info for every known model (loads each once); a broken file is listed with tier ``error``."""
        out: list[ModelInfo] = []
        for mid in self.ids():
            try:
                out.append(self.get(mid).info)
            except ModelError as exc:
                # One corrupt user file must not hide the working models from the dashboard.
                p = self.path(mid)
                size = p.stat().st_size if p.is_file() else 0
                out.append(ModelInfo(mid, "error", str(p), size, str(exc), {}))
        return out

    def _id_for_path(self, path: Path) -> str:
        p = path.resolve()
        if not p.is_file():
            raise ModelError(f"model file {p} not found")
        with self._lock:
            for mid, known in self._paths.items():
                if known == p:
                    return mid
            # A path whose stem is taken by another file keeps its full path as its id.
            mid = p.stem if p.stem not in self._paths else str(p)
            self._paths[mid] = p
            self._explicit[mid] = p
            return mid
