"""IRC line parsing with IRCv3 tags, shared by the Twitch chat reader and the chat bot.

Twitch speaks IRC with tags (badges, display names, bits); one parser serves both the reading side
(engine.sources.twitch) and the sending side (bot.irc).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

_TAG_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
STAFF_BADGES = frozenset({"broadcaster", "moderator", "staff", "admin", "global_mod"})
"""Badges whose holders moderate a channel."""


class IrcParseError(ValueError):
    """A line that is not IRC (no command)."""


def unescape_tag_value(value: str) -> str:
    """IRCv3 tag value unescaping: ``\\:`` -> ``;``, ``\\s`` -> space, ``\\\\``, ``\\r``, ``\\n``."""
    if "\\" not in value:
        return value
    out: list[str] = []
    it = iter(value)
    for ch in it:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(it, "")
        # An unknown escape drops the backslash; a trailing lone backslash is dropped (spec).
        out.append(_TAG_UNESCAPE.get(nxt, nxt))
    return "".join(out)


def escape_tag_value(value: str) -> str:
    """The inverse of ``unescape_tag_value``."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\:")
        .replace(" ", "\\s")
        .replace("\r", "\\r")
        .replace("\n", "\\n")
    )


@dataclass(frozen=True, slots=True)
class IrcMessage:
    """One parsed IRC line: command, parameters (the trailing one included), prefix and tags."""

    command: str
    params: tuple[str, ...] = ()
    prefix: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, line: str) -> IrcMessage:
        """Parse one line (CRLF optional); raises IrcParseError on a line with no command."""
        rest = line.rstrip("\r\n")
        tags: dict[str, str] = {}
        if rest.startswith("@"):
            raw, _, rest = rest[1:].partition(" ")
            for item in raw.split(";"):
                if item:
                    k, _, v = item.partition("=")
                    tags[k] = unescape_tag_value(v)
            rest = rest.lstrip(" ")
        prefix = ""
        if rest.startswith(":"):
            prefix, _, rest = rest[1:].partition(" ")
            rest = rest.lstrip(" ")
        trailing: str | None = None
        if " :" in rest:
            rest, _, trailing = rest.partition(" :")
        elif rest.startswith(":"):
            trailing, rest = rest[1:], ""
        parts = rest.split()
        if not parts:
            raise IrcParseError(f"IRC line without a command: {line[:80]!r}")
        params = parts[1:] + ([trailing] if trailing is not None else [])
        return cls(parts[0].upper(), tuple(params), prefix, tags)

    @property
    def nick(self) -> str:
        """The sender's nickname (the prefix up to ``!``)."""
        return self.prefix.split("!", 1)[0]

    @property
    def display_name(self) -> str:
        """Twitch's ``display-name`` tag when present, else the nick."""
        return self.tags.get("display-name") or self.nick

    @property
    def badges(self) -> dict[str, str]:
        """Twitch badges, ``badges=moderator/1,subscriber/12`` -> {"moderator": "1", ...}."""
        out: dict[str, str] = {}
        for b in self.tags.get("badges", "").split(","):
            if b:
                name, _, version = b.partition("/")
                out[name] = version
        return out

    @property
    def is_moderator(self) -> bool:
        """True for the broadcaster, moderators and Twitch staff, by badge or the ``mod`` tag."""
        return self.tags.get("mod") == "1" or bool(STAFF_BADGES & self.badges.keys())
