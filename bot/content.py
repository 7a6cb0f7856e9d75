"""The bot's editable content: reply templates (话术), the product catalogue and FAQ rules.

Each lives in a TOML file the team edits (defaults ship in ``bot/defaults``; ``[bot]`` in config.toml
points at your own copies). Files are validated once at start-up: a bad template, an unknown mood or a
wrong type stops the bot with an error naming the file and the entry.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.render import Template, TemplateError, parse_template
from engine.emotions import EMOTIONS

DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"

TEMPLATE_TYPES = ("push", "upsell", "engage", "reassure", "empathy", "apology", "faq")
"""Every kind of line the bot can post; moderators switch each type between queue, auto and off."""

DEFAULT_STRATEGY: Mapping[str, str] = {
    "excited": "push",
    "happy": "upsell",
    "neutral": "engage",
    "anxious": "reassure",
    "sad": "empathy",
    "angry": "apology",
}
"""Which template type each mood calls for, unless the templates file's ``[strategy]`` says otherwise."""

DEFAULT_MOOD_TAGS: Mapping[str, tuple[str, ...]] = {
    "excited": ("新品", "限量"),
    "happy": ("套装", "加购"),
    "neutral": ("热销",),
    "anxious": ("保障",),
    "sad": ("优惠",),
    "angry": (),
}
"""Which product tags each mood favours; angry favours none (no promotion while the room is angry)."""

MOOD_NAMES_ZH: Mapping[str, str] = {
    "happy": "开心",
    "excited": "兴奋",
    "angry": "生气",
    "sad": "难过",
    "anxious": "焦虑",
    "neutral": "平静",
}


class ContentError(ValueError):
    """A problem in a templates, products or FAQ file; names the file and the entry."""


@dataclass(frozen=True, slots=True)
class ReplyTemplate:
    """One reply line (or set of alternative lines) of a type, for some moods."""

    id: str
    type: str
    moods: tuple[str, ...]
    lines: tuple[Template, ...]
    cooldown: float

    @property
    def needs_product(self) -> bool:
        return any("product" in t.variables for t in self.lines)


@dataclass(frozen=True, slots=True)
class TemplateBook:
    """All reply templates, the per-mood strategy and the streamer's tip texts."""

    templates: tuple[ReplyTemplate, ...]
    strategy: Mapping[str, str]
    tips: Mapping[str, str]
    no_repeat: int

    def by_id(self, template_id: str) -> ReplyTemplate | None:
        return next((t for t in self.templates if t.id == template_id), None)

    def for_mood(self, mood: str) -> list[ReplyTemplate]:
        """Templates of the mood's strategy type that list the mood."""
        kind = self.strategy.get(mood, "")
        return [t for t in self.templates if t.type == kind and mood in t.moods]


@dataclass(frozen=True, slots=True)
class Product:
    """One catalogue item."""

    id: str
    name: str
    aliases: tuple[str, ...]
    price: float
    stock: int
    link: str
    tags: tuple[str, ...]

    @property
    def price_text(self) -> str:
        return f"{self.price:g}"


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The product catalogue and which tags each mood favours."""

    products: tuple[Product, ...]
    mood_tags: Mapping[str, tuple[str, ...]]

    def get(self, product_id: str) -> Product | None:
        return next((p for p in self.products if p.id == product_id), None)


@dataclass(frozen=True, slots=True)
class FaqRule:
    """Keywords or regular expressions that recognise a question, and the answer template."""

    id: str
    keywords: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    answers: tuple[Template, ...]
    user_cooldown: float
    cooldown: float


@dataclass(frozen=True, slots=True)
class FaqBook:
    rules: tuple[FaqRule, ...]


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContentError(f"{path}: file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ContentError(f"{path}: invalid TOML: {e}") from None


def _str(d: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    v = d.get(key, default)
    if not isinstance(v, str) or (default is None and not v.strip()):
        raise ContentError(f"{where}: '{key}' must be a non-empty string")
    return v


def _strs(d: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = d.get(key, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ContentError(f"{where}: '{key}' must be a string or a list of strings")
    return tuple(v)


def _num(d: Mapping[str, Any], key: str, where: str, default: float) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ContentError(f"{where}: '{key}' must be a non-negative number")
    return float(v)


def _templates(texts: tuple[str, ...], where: str) -> tuple[Template, ...]:
    if not texts:
        raise ContentError(f"{where}: needs at least one line of text")
    try:
        return tuple(parse_template(t) for t in texts)
    except TemplateError as e:
        raise ContentError(f"{where}: {e}") from None


def load_templates(path: Path) -> TemplateBook:
    """Parse a templates file (see bot/defaults/templates.toml for the documented format)."""
    data = _read(path)
    strategy = dict(DEFAULT_STRATEGY)
    for mood, kind in dict(data.get("strategy", {})).items():
        if mood not in EMOTIONS:
            raise ContentError(f"{path}: [strategy]: unknown mood {mood!r}")
        if kind not in TEMPLATE_TYPES:
            raise ContentError(
                f"{path}: [strategy].{mood}: unknown type {kind!r} ({', '.join(TEMPLATE_TYPES)})"
            )
        strategy[mood] = kind
    defaults = data.get("defaults", {})
    default_cooldown = _num(defaults, "cooldown", f"{path}: [defaults]", 120.0)
    no_repeat = int(_num(defaults, "no_repeat", f"{path}: [defaults]", 5))
    out: list[ReplyTemplate] = []
    seen: set[str] = set()
    for i, entry in enumerate(data.get("template", [])):
        where = f"{path}: [[template]] #{i + 1}"
        tid = _str(entry, "id", where)
        where = f"{path}: template {tid!r}"
        if tid in seen:
            raise ContentError(f"{where}: duplicate id")
        seen.add(tid)
        unknown = set(entry) - {"id", "type", "moods", "text", "cooldown"}
        if unknown:
            raise ContentError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        kind = _str(entry, "type", where)
        if kind not in TEMPLATE_TYPES:
            raise ContentError(f"{where}: unknown type {kind!r} ({', '.join(TEMPLATE_TYPES)})")
        moods = _strs(entry, "moods", where) or tuple(m for m, k in strategy.items() if k == kind)
        bad = [m for m in moods if m not in EMOTIONS]
        if bad:
            raise ContentError(f"{where}: unknown mood(s) {bad}; expected {', '.join(EMOTIONS)}")
        lines = _templates(_strs(entry, "text", where), where)
        out.append(ReplyTemplate(tid, kind, moods, lines, _num(entry, "cooldown", where, default_cooldown)))
    tips = {}
    for mood, text in dict(data.get("tips", {})).items():
        if mood not in EMOTIONS or not isinstance(text, str):
            raise ContentError(f"{path}: [tips].{mood}: must be a mood name with a string")
        tips[mood] = text
    return TemplateBook(tuple(out), strategy, tips, no_repeat)


def load_catalogue(path: Path) -> Catalogue:
    """Parse a product catalogue file (see bot/defaults/products.toml)."""
    data = _read(path)
    mood_tags = dict(DEFAULT_MOOD_TAGS)
    for mood, tags in dict(data.get("mood_tags", {})).items():
        if mood not in EMOTIONS:
            raise ContentError(f"{path}: [mood_tags]: unknown mood {mood!r}")
        mood_tags[mood] = _strs({"t": tags}, "t", f"{path}: [mood_tags].{mood}")
    out: list[Product] = []
    seen: set[str] = set()
    for i, entry in enumerate(data.get("product", [])):
        where = f"{path}: [[product]] #{i + 1}"
        pid = _str(entry, "id", where)
        where = f"{path}: product {pid!r}"
        if pid in seen:
            raise ContentError(f"{where}: duplicate id")
        seen.add(pid)
        unknown = set(entry) - {"id", "name", "aliases", "price", "stock", "link", "tags"}
        if unknown:
            raise ContentError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        out.append(
            Product(
                id=pid,
                name=_str(entry, "name", where),
                aliases=_strs(entry, "aliases", where),
                price=_num(entry, "price", where, 0.0),
                stock=int(_num(entry, "stock", where, 0)),
                link=_str(entry, "link", where, ""),
                tags=_strs(entry, "tags", where),
            )
        )
    return Catalogue(tuple(out), mood_tags)


def load_faq(path: Path) -> FaqBook:
    """Parse a FAQ rules file (see bot/defaults/faq.toml)."""
    data = _read(path)
    defaults = data.get("defaults", {})
    d_user = _num(defaults, "user_cooldown", f"{path}: [defaults]", 300.0)
    d_rule = _num(defaults, "cooldown", f"{path}: [defaults]", 30.0)
    rules: list[FaqRule] = []
    for i, entry in enumerate(data.get("rule", [])):
        where = f"{path}: [[rule]] #{i + 1}"
        rid = _str(entry, "id", where)
        where = f"{path}: rule {rid!r}"
        unknown = set(entry) - {"id", "keywords", "patterns", "answer", "user_cooldown", "cooldown"}
        if unknown:
            raise ContentError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        keywords = tuple(k.lower() for k in _strs(entry, "keywords", where))
        patterns = []
        for p in _strs(entry, "patterns", where):
            try:
                patterns.append(re.compile(p, re.IGNORECASE))
            except re.error as e:
                raise ContentError(f"{where}: bad pattern {p!r}: {e}") from None
        if not keywords and not patterns:
            raise ContentError(f"{where}: needs 'keywords' or 'patterns'")
        rules.append(
            FaqRule(
                rid,
                keywords,
                tuple(patterns),
                _templates(_strs(entry, "answer", where), where),
                _num(entry, "user_cooldown", where, d_user),
                _num(entry, "cooldown", where, d_rule),
            )
        )
    return FaqBook(tuple(rules))
