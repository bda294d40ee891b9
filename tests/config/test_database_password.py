"""`database.password` reaches every connection (engine, daemon, `orders`/`trades`), and one password only.

It used to be accepted and documented, then dropped: only `database.url` reached persistence, so PostgreSQL
refused the login and the engine stayed degraded (spooling) for good.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any

import pytest

from db import InstanceLock, parse_url
from engine.cli._config_cmds import with_database
from engine.config import Config, resolve_config

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "db-Pw@/:%?#9"
USER_URL = "postgresql://bexec@db.example:5432/bexec"


def _config(**database: Any) -> Config:
    return Config.model_validate({"database": database})


def test_connection_url_carries_the_password() -> None:
    config = _config(url=USER_URL, password=PASSWORD)
    assert parse_url(config.database.connection_url()).password == PASSWORD
    assert config.database.url == USER_URL  # the configured value itself is left alone


def test_connection_url_without_password_is_the_url() -> None:
    for url in (USER_URL, "postgresql://bexec:inline@db.example/bexec", "sqlite:///data/x.sqlite"):
        assert _config(url=url).database.connection_url() == url


def test_password_from_the_environment_and_from_a_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[database]\nurl = "{USER_URL}"\n', encoding="utf-8")
    loaded, problems = resolve_config(path, {"FREQTRADE__DATABASE__PASSWORD": PASSWORD})
    assert not problems
    assert loaded is not None
    assert parse_url(loaded.config.database.connection_url()).password == PASSWORD

    secret = tmp_path / "db-password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    loaded, problems = resolve_config(path, {"FREQTRADE__DATABASE__PASSWORD_FILE": str(secret)})
    assert not problems
    assert loaded is not None
    assert parse_url(loaded.config.database.connection_url()).password == PASSWORD


@pytest.mark.parametrize(
    ("url", "path", "message"),
    [
        ("postgresql://bexec:other-secret@db.example/bexec", "database.password", "the URL carries a password too"),
        ("postgresql://bexec:@db.example/bexec", "database.password", "the URL carries a password too"),
        ("sqlite:///data/x.sqlite", "database.password", "SQLite takes no password"),
        ("postgresql://db.example/bexec", "database.url", "a password needs a user"),
    ],
)
def test_conflicting_passwords_are_a_config_problem(url: str, path: str, message: str) -> None:
    loaded, problems = resolve_config(
        None, {"FREQTRADE__DATABASE__URL": url, "FREQTRADE__DATABASE__PASSWORD": PASSWORD}
    )
    assert loaded is None
    assert [p.path for p in problems] == [path]
    assert message in problems[0].message
    text = "\n".join(str(p) for p in problems)
    assert PASSWORD not in text
    assert "other-secret" not in text


def test_unencoded_slash_in_url_password_is_a_config_problem() -> None:
    loaded, problems = resolve_config(None, {"FREQTRADE__DATABASE__URL": "postgresql://bexec:pa/ss@db.example/bexec"})
    assert loaded is None
    assert [p.path for p in problems] == ["database.url"]
    assert "percent-encode" in problems[0].message
    assert "pa/ss" not in str(problems[0])


def test_empty_password_counts_as_unset() -> None:
    assert _config(url="sqlite:///data/x.sqlite", password="").database.connection_url() == "sqlite:///data/x.sqlite"


def test_secret_values_cover_every_form_of_the_database_password() -> None:
    assert PASSWORD in _config(url=USER_URL, password=PASSWORD).secret_values()
    values = _config(url="postgresql://bexec:p%40ss%2Fw0rd@db.example/bexec").secret_values()
    assert {"p%40ss%2Fw0rd", "p@ss/w0rd"} <= set(values)


class _Captured(Exception):
    pass


def test_engine_start_connects_with_the_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import actors.root
    from engine.api import Engine

    seen: dict[str, Any] = {}

    def fake_start(settings: actors.root.RootSettings, **_kw: Any) -> None:
        seen["settings"] = settings
        raise _Captured

    def fake_lock(url: str, **_kw: Any) -> InstanceLock:  # the server is not there: the lock is taken first
        seen["lock_url"] = url
        return InstanceLock(url)

    monkeypatch.setattr(actors.root.RootActor, "start", fake_start)
    monkeypatch.setattr("db._lock.acquire_instance_lock", fake_lock)
    with pytest.raises(_Captured):
        Engine.start(_config(url=USER_URL, password=PASSWORD), spool_path=tmp_path / "spool.jsonl")
    settings = seen["settings"]
    assert parse_url(settings.database_url).password == PASSWORD
    assert parse_url(seen["lock_url"]).password == PASSWORD  # the lock's session logs in with it too
    assert PASSWORD not in repr(settings)


def test_orders_and_trades_connect_with_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREQTRADE__DATABASE__URL", USER_URL)
    monkeypatch.setenv("FREQTRADE__DATABASE__PASSWORD", PASSWORD)
    seen: list[str] = []

    def run(args: argparse.Namespace) -> int:
        seen.append(args.database_url)
        return 0

    args = argparse.Namespace(path=None, config_opt=None, db_url=None, log_level="WARNING", log_json=False)
    assert with_database(run)(args) == 0
    assert parse_url(seen[0]).password == PASSWORD


def _database_url_reads(source: str) -> list[int]:
    """Lines where `<x>.database.url` is used as a value, not just looked at (`.split(...)` on it is fine)."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "url"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "database"
        and not isinstance(parents.get(node), ast.Attribute)
    ]


def test_nothing_connects_with_the_bare_configured_url() -> None:
    # Every path must go through `DatabaseConfig.connection_url()`; one that reads `config.database.url` drops
    # `database.password` again.
    config_package = ROOT / "engine" / "config"
    offenders = []
    for package in ("engine", "actors", "db", "sim", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if config_package in path.parents:
                continue
            lines = _database_url_reads(path.read_text(encoding="utf-8"))
            offenders += [f"{path.relative_to(ROOT)}:{line}" for line in lines]
    offenders += [f"run.py:{line}" for line in _database_url_reads((ROOT / "run.py").read_text(encoding="utf-8"))]
    assert not offenders, f"use config.database.connection_url() instead of config.database.url: {offenders}"


def test_the_guard_finds_a_bare_read() -> None:
    assert _database_url_reads("connect(cfg.database.url)\nx = cfg.database.url.split('://')[0]\n") == [1]
