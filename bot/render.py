"""A tiny, safe template language for reply lines (话术).

``{var}`` inserts a variable, ``{宝宝|家人们|朋友们}`` picks one alternative at random, ``{{`` and ``}}``
are literal braces. Templates are parsed once when the file is loaded, so a bad template stops start-up
with its id instead of failing live. Rendering is a single pass over the parsed parts: a value (a viewer's
name, chat text) is inserted as plain text and never parsed again, so ``{`` in a name cannot expand
anything; values are also stripped of control characters and bounded in length.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_VALUE_CHARS = 40
MAX_NAME_CHARS = 20


class TemplateError(ValueError):
    """A template that cannot be parsed or rendered; the message says where."""


@dataclass(frozen=True, slots=True)
class Literal:
    text: str


@dataclass(frozen=True, slots=True)
class Var:
    name: str


@dataclass(frozen=True, slots=True)
class Choice:
    options: tuple[str, ...]


Part = Literal | Var | Choice


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text, variables and alternatives."""

    source: str
    parts: tuple[Part, ...]

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parts if isinstance(p, Var))

    def render(self, values: Mapping[str, str], rng: random.Random | None = None) -> str:
        """Fill the template; a missing variable raises TemplateError (the caller picks another line)."""
        r = rng or random
        out: list[str] = []
        for p in self.parts:
            if isinstance(p, Literal):
                out.append(p.text)
            elif isinstance(p, Choice):
                out.append(r.choice(p.options))
            else:
                if p.name not in values:
                    raise TemplateError(f"variable {{{p.name}}} has no value")
                limit = MAX_NAME_CHARS if p.name == "user" else MAX_VALUE_CHARS
                out.append(clean_value(values[p.name], limit))
        return finish_line("".join(out))


def parse_template(source: str) -> Template:
    """Parse ``source``; raises TemplateError for unbalanced braces or a bad variable name."""
    parts: list[Part] = []
    buf: list[str] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "{" and source.startswith("{{", i):
            buf.append("{")
            i += 2
        elif ch == "}" and source.startswith("}}", i):
            buf.append("}")
            i += 2
        elif ch == "{":
            end = source.find("}", i + 1)
            if end < 0:
                raise TemplateError(f"unclosed '{{' at position {i} in {source!r}")
            inner = source[i + 1 : end]
            if "{" in inner:
                raise TemplateError(f"nested '{{' at position {i} in {source!r}")
            if buf:
                parts.append(Literal("".join(buf)))
                buf = []
            if "|" in inner:
                options = tuple(inner.split("|"))
                parts.append(Choice(options))
            elif _VAR.match(inner):
                parts.append(Var(inner))
            else:
                raise TemplateError(f"bad variable name {{{inner}}} in {source!r}")
            i = end + 1
        elif ch == "}":
            raise TemplateError(f"unmatched '}}' at position {i} in {source!r}")
        else:
            buf.append(ch)
            i += 1
    if buf:
        parts.append(Literal("".join(buf)))
    return Template(source, tuple(parts))


def clean_value(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """A value safe to put in a chat line: one line, no control characters, no braces, bounded."""
    s = "".join(" " if (ch < " " or ch == "\x7f" or "\x80" <= ch < "\xa0") else ch for ch in str(value))
    # Braces are harmless to this renderer but confuse readers of the queue and other template engines.
    s = s.replace("{", "(").replace("}", ")")
    s = " ".join(s.split())
    # A value must not turn the line into a chat command (/ban, .timeout, !bot) wherever it lands.
    s = s.lstrip("/.!\\ ")
    if len(s) > limit:
        s = s[: max(1, limit - 1)] + "…"
    return s


def finish_line(line: str) -> str:
    """Collapse whitespace; a line never starts with a chat-command character."""
    s = " ".join(line.split())
    return s.lstrip("/.\\ ")
