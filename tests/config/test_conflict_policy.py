"""`execution.conflict_policy`: "refuse" (the default), "queue" or "parallel"; anything else is an error naming the
three; the value reaches the pair books, and config.example.toml states it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from engine.api._wiring import pair_settings
from engine.config import Config, ConfigError, ExecutionConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("policy", ["refuse", "queue", "parallel"])
def test_each_policy_is_accepted_and_reaches_the_pair_books(policy: str) -> None:
    config = Config.model_validate({"execution": {"conflict_policy": policy}})
    assert config.execution.conflict_policy == policy
    assert pair_settings(config).conflict_policy == policy


def test_refuse_stays_the_default() -> None:
    assert Config().execution.conflict_policy == "refuse"
    assert pair_settings(Config()).conflict_policy == "refuse"


def test_an_unknown_policy_is_an_error_naming_the_three(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[execution]\nconflict_policy = "paralel"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    text = str(caught.value)
    assert "conflict_policy" in text and "'refuse', 'queue' or 'parallel'" in text, text


def test_the_environment_sets_it() -> None:
    loaded = load_config(None, {"FREQTRADE__EXECUTION__CONFLICT_POLICY": "parallel"})
    assert loaded.config.execution.conflict_policy == "parallel"


def test_the_field_says_what_each_policy_does() -> None:
    description = ExecutionConfig.model_fields["conflict_policy"].description or ""
    assert "queued" in description and "parallel" in description and "own orders" in description


def test_the_example_config_states_the_policy_and_its_values() -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert tomllib.loads(text)["execution"]["conflict_policy"] == "refuse"
    line = next(line for line in text.splitlines() if line.startswith("conflict_policy"))
    assert "refuse | queue" in line and "parallel" in text[text.index(line) :].split("\n[", 1)[0]
