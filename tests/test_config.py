"""Configuration: the documented file equals the embedded defaults; errors name the key and line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.config import Config, ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent


def test_config_toml_documents_the_embedded_defaults() -> None:
    cfg = load_config(ROOT / "config.toml")
    assert dataclasses.replace(cfg, base_dir=".") == Config()


def test_every_key_in_config_toml_is_commented() -> None:
    lines = (ROOT / "config.toml").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        if s and not s.startswith("#") and not s.startswith("[") and "=" in s:
            # The key's comment is on the line(s) just above it, or a sibling key shares the comment block.
            above = [ln.strip() for ln in lines[max(0, i - 3) : i]]
            assert any(a.startswith("#") for a in above) or (above[-1:] and "=" in above[-1]), (
                f"line {i + 1}: {s}"
            )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[server]\nport = "x"\n', "config.toml:2: 'server.port' must be an integer"),
        ("[flood]\nper_user_capp = 3\n", "config.toml:2: unknown key 'flood.per_user_capp'"),
        ('[[sources]]\ntype = "replay"\n[[sources]]\ntype = "nope"\n', "config.toml:4: 'sources[1].type'"),
        ('[aggregate]\nwindows = [10, "a"]\n', "config.toml:2: 'aggregate.windows[1]' must be an integer"),
        ("[store]\nretention_hours = -1\n", "'store.retention_hours' must be a non-negative number"),
        ("[ingest]\nenabled = 1\n", "'ingest.enabled' must be true or false"),
        ("server = 3\n", "'server' must be a table"),
        ("[server\n", "invalid TOML"),
    ],
)
def test_errors_name_the_dotted_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="config.toml")
    assert expected in str(err.value)


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    f = tmp_path / "my.toml"
    f.write_text('[store]\npath = "data/x.db"\n', encoding="utf-8")
    cfg = load_config(f)
    assert cfg.resolve(cfg.store.path) == tmp_path / "data" / "x.db"


def test_missing_file_and_bad_utf8_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'[server]\nhost = "\xff"\n')
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(bad)
