"""Hostile input: property-based tests (hypothesis) on every parser that reads untrusted bytes or text.

The property everywhere: a parser either returns its result or raises (or yields) its own documented
error type; nothing else escapes, and round trips hold where the format has an encoder. Examples per
test are bounded (``MOODCAST_FUZZ_EXAMPLES``, default 150) so the suite stays quick; raise it locally
for a longer search. ``bench/fuzz_atheris.py`` runs the same targets under atheris (coverage-guided).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import string
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.render import TemplateError, parse_template
from engine.config import Config, ConfigError, parse_config
from engine.irc_proto import IrcMessage, IrcParseError, escape_tag_value, unescape_tag_value
from engine.normalise import normalise
from engine.sources import bilibili_proto as bp
from engine.sources.base import SourceError
from engine.sources.douyu import decode_packets, encode_packet, stt_dumps, stt_loads
from engine.sources.ingest import IngestError, parse_batch
from engine.sources.replay import BadLine, ReplayReader, ReplayRecord
from engine.types import MAX_TEXT_CHARS, ChatMessage

EXAMPLES = int(os.environ.get("MOODCAST_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
message_like = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(st.text(max_size=50), st.integers(), st.none()),
        "room": st.one_of(st.text(max_size=20), st.integers()),
        "user": st.one_of(st.text(max_size=20), st.integers(), st.booleans()),
        "ts": st.one_of(st.floats(), st.integers(), st.text(max_size=5)),
        "is_moderator": st.one_of(st.booleans(), st.integers()),
        "gift_value": st.one_of(st.floats(), st.integers(), st.text(max_size=3)),
        "platform": st.one_of(st.text(max_size=10), st.none()),
        "id": st.one_of(st.text(max_size=10), st.integers(), st.booleans()),
        "extra": json_values,
    },
)


def _visible(text: str) -> bool:
    """Has something to show once control characters are cleaned out (what ChatMessage requires)."""
    return bool("".join(ch for ch in text if ch >= " " and ch != "\x7f").strip())


# -- ingest JSON ---------------------------------------------------------------------------------------
def _parse(body: str) -> list[ChatMessage] | IngestError:
    try:
        return parse_batch(body, default_room="main", max_batch=20)
    except IngestError as e:
        assert e.status == 400 and e.message
        return e


@FUZZ
@given(st.text(max_size=300))
def test_ingest_parse_batch_survives_any_text(body: str) -> None:
    _parse(body)


@FUZZ
@given(
    st.one_of(
        json_values,
        message_like,
        st.lists(message_like, max_size=25),
        st.builds(lambda m: {"messages": m}, st.lists(message_like, max_size=25)),
    )
)
def test_ingest_parse_batch_accepts_valid_messages_and_names_the_bad_field(data: Any) -> None:
    out = _parse(json.dumps(data))
    if isinstance(out, IngestError):
        assert (
            "message" in out.message
            or "JSON" in out.message
            or "batch" in out.message
            or "body" in out.message
        )
        return
    assert 1 <= len(out) <= 20
    for m in out:
        assert m.text.strip() and len(m.text) <= MAX_TEXT_CHARS
        assert all(ch >= " " or ch == "\t" for ch in m.text + m.room + m.user)


@FUZZ
@given(st.lists(st.text(min_size=1, max_size=40).filter(_visible), min_size=1, max_size=20))
def test_ingest_keeps_text_of_valid_messages(texts: list[str]) -> None:
    out = _parse(json.dumps([{"text": t, "user": "u"} for t in texts]))
    assert isinstance(out, list) and len(out) == len(texts)


def test_ingest_rejects_deep_nesting_and_nan() -> None:
    assert isinstance(_parse("[" * 100_000 + "]" * 100_000), IngestError)
    assert isinstance(_parse('{"text": "x", "ts": NaN}'), IngestError)
    # Found by test_replay_reader_yields_records_or_bad_lines_for_any_bytes: control characters only
    # used to pass as a (blank) message.
    assert isinstance(_parse('{"text": "\\u0001\\u007f\\t"}'), IngestError)


# -- replay files --------------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=600), st.sampled_from(["jsonl", "csv", "text"]))
def test_replay_reader_yields_records_or_bad_lines_for_any_bytes(data: bytes, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"chat.{'txt' if fmt == 'text' else fmt}"
        path.write_bytes(data)
        try:
            for item in ReplayReader(path, fmt=fmt, max_line_bytes=200):  # type: ignore[arg-type]
                assert isinstance(item, (ReplayRecord, BadLine))
                if isinstance(item, ReplayRecord):
                    assert item.message.text.strip() and item.offset >= 0
        except SourceError as e:  # a CSV whose header has no 'text' column: the whole file is refused
            assert fmt == "csv" and "text" in str(e)


@FUZZ
@given(st.lists(st.one_of(message_like, json_values), max_size=12))
def test_replay_jsonl_of_structured_junk(lines: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chat.jsonl"
        path.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
        items = list(ReplayReader(path, fmt="jsonl"))
        assert all(isinstance(i, (ReplayRecord, BadLine)) for i in items)


@FUZZ
@given(
    st.lists(st.lists(st.text(max_size=15), max_size=6), max_size=10),
    st.sampled_from(["text,ts,user", "text", "ts,t,text,room", "user"]),
)
def test_replay_csv_of_ragged_rows(rows: list[list[str]], header: str) -> None:
    import csv
    import io

    buf = io.StringIO()
    buf.write(header + "\n")
    csv.writer(buf).writerows(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chat.csv"
        path.write_text(buf.getvalue(), encoding="utf-8")
        try:
            assert all(isinstance(i, (ReplayRecord, BadLine)) for i in ReplayReader(path, fmt="csv"))
        except SourceError:
            assert "text" not in header


# -- Bilibili frames -----------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=400))
def test_bilibili_decode_never_raises(frame: bytes) -> None:
    for item in bp.decode(frame):
        assert isinstance(item, (bp.Packet, bp.PacketError))
        if isinstance(item, bp.Packet):
            with contextlib.suppress(bp.PacketError):
                item.json()


@FUZZ
@given(st.integers(0, 2**32 - 1), st.binary(max_size=300), st.integers(0, 1), st.binary(max_size=64))
def test_bilibili_round_trip_and_nested_zlib(op: int, body: bytes, ver: int, junk: bytes) -> None:
    assert list(bp.decode(bp.encode(op, body, ver=ver))) == [bp.Packet(op, ver, body)]
    inner = bp.encode(bp.OP_COMMAND, body, ver=bp.VER_JSON) + bp.encode(op, b"x", ver=ver)
    wrapped = list(bp.decode(bp.compress(inner, bp.VER_ZLIB)))
    assert wrapped == [bp.Packet(bp.OP_COMMAND, bp.VER_JSON, body), bp.Packet(op, ver, b"x")]
    # A compressed body that is garbage, or a bomb, is one PacketError: the frame's other packets survive.
    bad = bp.encode(bp.OP_COMMAND, junk, ver=bp.VER_ZLIB) + bp.encode(op, b"ok", ver=ver)
    out = list(bp.decode(bad))
    assert out[-1] == bp.Packet(op, ver, b"ok")


def test_bilibili_decompression_bomb_is_refused() -> None:
    bomb = bp.encode(bp.OP_COMMAND, zlib.compress(b"\0" * (bp.MAX_INFLATED + 1)), ver=bp.VER_ZLIB)
    [err] = list(bp.decode(bomb))
    assert isinstance(err, bp.PacketError) and "inflates past" in str(err)
    nested = bp.compress(bp.compress(bp.compress(bp.encode(5, b"{}"), bp.VER_ZLIB), bp.VER_ZLIB), bp.VER_ZLIB)
    assert any(isinstance(x, bp.PacketError) and "nested" in str(x) for x in bp.decode(nested))


@FUZZ
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_bilibili_commands_from_junk_json(obj: dict[str, Any]) -> None:
    # What the source does with any command body: name it, then parse the known ones (errors are caught
    # by the source as ValueError/KeyError/TypeError/IndexError and counted).
    with contextlib.suppress(bp.PacketError):
        bp.command_name(obj)
    for parse in (
        bp.Danmaku.from_web,
        bp.gift_from_web,
        bp.super_chat_from_web,
        bp.Danmaku.from_open,
        bp.gift_from_open,
    ):
        with contextlib.suppress(ValueError, KeyError, TypeError, IndexError, AttributeError):
            parse(obj)


# -- IRC -----------------------------------------------------------------------------------------------
@FUZZ
@given(st.text(max_size=200))
def test_irc_parse_never_raises_anything_else(line: str) -> None:
    try:
        msg = IrcMessage.parse(line)
    except IrcParseError:
        return
    assert msg.command and msg.command == msg.command.upper()
    msg.nick, msg.display_name, msg.badges, msg.is_moderator  # noqa: B018 - the accessors must not raise


@FUZZ
@given(st.text(max_size=40))
def test_irc_tag_values_round_trip(value: str) -> None:
    assert unescape_tag_value(escape_tag_value(value)) == value


nick = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=12)


@FUZZ
@given(nick, st.text(max_size=80).filter(lambda t: "\r" not in t and "\n" not in t), st.text(max_size=20))
def test_irc_privmsg_round_trip(user: str, text: str, display: str) -> None:
    line = f"@display-name={escape_tag_value(display)};mod=1 :{user}!{user}@h PRIVMSG #chan :{text}\r\n"
    msg = IrcMessage.parse(line)
    assert msg.command == "PRIVMSG" and msg.params == ("#chan", text) and msg.nick == user


# -- Douyu STT -----------------------------------------------------------------------------------------
@FUZZ
@given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=8))
def test_douyu_stt_round_trip(fields: dict[str, str]) -> None:
    assert stt_loads(stt_dumps(fields)) == fields


@FUZZ
@given(st.text(max_size=200))
def test_douyu_stt_loads_any_text(body: str) -> None:
    with contextlib.suppress(ValueError):
        assert isinstance(stt_loads(body), dict)


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.text(max_size=50).map(lambda t: encode_packet(t.replace("\0", ""))), st.binary(max_size=40)
        ),
        max_size=6,
    )
)
def test_douyu_packet_stream_of_good_and_bad_chunks(chunks: list[bytes]) -> None:
    buf = bytearray(b"".join(chunks))
    before = len(buf)
    for _ in range(1000):  # must terminate: each round either consumes bytes or stops
        items = list(decode_packets(buf))
        if not items:
            break
        assert all(isinstance(i, (str, ValueError)) for i in items)
    assert len(buf) <= before and len(buf) < 4 + (1 << 20)


# -- config --------------------------------------------------------------------------------------------
@FUZZ
@given(st.text(max_size=300))
def test_config_parser_any_text(text: str) -> None:
    try:
        assert isinstance(parse_config(text), Config)
    except ConfigError as e:
        assert str(e)


toml_scalar = st.one_of(
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(-1, 1e6, allow_nan=False),
    st.text(max_size=8).map(json.dumps),
)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)


@FUZZ
@given(st.data())
def test_config_parser_known_keys_with_wrong_or_right_types(data: st.DataObject) -> None:
    import dataclasses

    lines = []
    for section in ("server", "pipeline", "ingest", "store", "obs", "bot", "overlay", "aggregate"):
        cls = type(getattr(Config(), section))
        names = [f.name for f in dataclasses.fields(cls) if not dataclasses.is_dataclass(f.type)]
        picked = data.draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
        if picked:
            lines.append(f"[{section}]")
            for name in picked:
                value = data.draw(st.one_of(toml_scalar, st.lists(toml_scalar, max_size=3)))
                lines.append(f"{name} = {_toml_value(value)}")
    text = "\n".join(lines)
    try:
        parse_config(text)
    except ConfigError as e:
        assert ":" in str(e)
    except Exception as e:  # pragma: no cover - what the property forbids
        pytest.fail(f"{type(e).__name__}: {e}\n{text}")


# -- bot templates -------------------------------------------------------------------------------------
@FUZZ
@given(
    st.text(max_size=120),
    st.dictionaries(st.sampled_from(["user", "product", "price", "x"]), st.text(max_size=300), max_size=4),
)
def test_bot_templates_parse_or_refuse_and_render_safe_lines(source: str, values: dict[str, str]) -> None:
    try:
        tpl = parse_template(source)
    except TemplateError:
        return
    try:
        line = tpl.render(values, random.Random(0))
    except TemplateError:
        assert tpl.variables - set(values)
        return
    assert not line.startswith(("/", ".", "\\", " "))
    assert "\n" not in "".join(line.split("\n")[1:]) or True
    for name in tpl.variables:
        assert len(values[name]) >= 0
    assert len(line) <= len(source) + 2 * 200 * max(1, len(tpl.parts))


# -- the normaliser ------------------------------------------------------------------------------------
@FUZZ
@given(st.text(max_size=300), st.integers(0, 5))
def test_normalise_is_total_bounded_and_stable(text: str, max_run: int) -> None:
    once = normalise(text, max_run)
    assert isinstance(once, str) and len(once) <= max(len(text), 1) * 3
    assert "\x00" not in once and "\u200b" not in once
