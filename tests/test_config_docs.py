"""Every setting is documented: README's config table and .env.example list each field of
`Settings` with its real default, so an operator never meets an undocumented knob."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from bridge.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _config_docs() -> object:
    spec = importlib.util.spec_from_file_location("config_docs", ROOT / "scripts" / "config_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_env_example_is_generated_from_settings() -> None:
    docs = _config_docs()
    assert (ROOT / ".env.example").read_text() == docs.env_example() + "\n"  # type: ignore[attr-defined]


def test_readme_config_table_lists_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    docs = _config_docs()
    for row in docs.table().splitlines()[2:]:  # type: ignore[attr-defined]
        assert row in readme, f"README config table is missing or outdated: {row}"


def test_uncommented_env_example_loads_back_to_the_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("BRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(ROOT)
    lines = (ROOT / ".env.example").read_text().splitlines()
    uncommented = [line[2:] for line in lines if line.startswith("# BRIDGE_")]
    assert len(uncommented) == len(Settings.model_fields)
    env_file = tmp_path / "env"
    env_file.write_text("\n".join(uncommented) + "\n")
    from_file = Settings(_env_file=env_file)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for name in Settings.model_fields:
        a, b = getattr(from_file, name), getattr(defaults, name)
        if isinstance(a, Path):
            assert a.resolve() == b.resolve(), name
        else:
            assert a == b, name
