"""Resolve the configuration from defaults < TOML file < environment, remembering where each value came from.

Environment overrides follow Freqtrade's convention ``FREQTRADE__SECTION__KEY`` (case-insensitive names,
``__`` between levels), parsed by pydantic-settings. Unlike Freqtrade, values are never guessed into ints or
floats: an all-digit secret stays a string, and decimals stay exact. Secrets may also be read from files with a
``_FILE`` suffix (``FREQTRADE__EXCHANGE__SECRET_FILE=/run/secrets/key.pem``, or ``secret_file`` in the TOML).

Validation errors are turned into :class:`ConfigProblem` values that name the dotted field, its source and a
fix; the offending input is never included, so a malformed secret cannot leak through an error message.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from engine.config._env_source import ENV_PREFIX, MappingEnvSource
from engine.config._location import sqlite_location_problem
from engine.config._models import Config
from engine.config._secret_file import SecretFileError, read_secret_file
from engine.config._section import bool_fields

__all__ = [
    "ENV_PREFIX",
    "SECRET_FIELDS",
    "ConfigError",
    "ConfigProblem",
    "LoadedConfig",
    "Source",
    "load_config",
    "resolve_config",
]

SECRET_FIELDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("exchange", "key"),
        ("exchange", "secret"),
        ("database", "password"),
        ("alerts", "webhook_token"),
        ("alerts", "telegram_token"),
        ("api", "token"),
    }
)
_COMMA_LIST_FIELDS = frozenset({("exchange", "pair_whitelist")})
_BOOL_FIELDS = bool_fields(Config)

Path_ = tuple[str, ...]
_NAMED_MSG = re.compile(r"^([a-z_]+\.[a-z_]+): (.*)$", re.DOTALL)


@dataclass(frozen=True)
class Source:
    """Where a value came from: ``default``, ``file`` (with its path) or ``env`` (with the variable name)."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return self.kind if not self.detail else f"{self.kind} {self.detail}"


DEFAULT = Source("default")


@dataclass(frozen=True)
class ConfigProblem:
    """One configuration error: the dotted field, where its value came from, what is wrong and how to fix it."""

    path: str
    source: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path} [{self.source}]: {self.message}\n    fix: {self.fix}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedConfig:
    """A valid configuration with the source of every value and the environment variables that were used."""

    config: Config
    provenance: Mapping[Path_, Source]
    env_names: tuple[str, ...]
    path: Path | None = None
    secret_values: tuple[str, ...] = field(default=(), repr=False)

    def source_of(self, path: Path_) -> Source:
        """The source of the value at `path`.

        A nested key takes its nearest recorded ancestor's source; a mapping assembled from several nested
        variables (``…__DRY_RUN_WALLET__BTC``) reports them all.
        """
        for n in range(len(path), 0, -1):
            src = self.provenance.get(path[:n])
            if src is not None:
                return src
        below = sorted({str(s) for p, s in self.provenance.items() if p[: len(path)] == path and len(p) > len(path)})
        return Source("+".join(below)) if below else DEFAULT


def _read_secret_file(path_text: str, what: str, problems: list[ConfigProblem], src: Source) -> str | None:
    try:
        return read_secret_file(path_text)
    except SecretFileError as exc:
        fix = (
            "write the secret into the file, or unset this setting"
            if "empty" in str(exc)
            else "point it at a readable file"
        )
        problems.append(ConfigProblem(what, str(src), str(exc), fix))
        return None


def _load_file(path: Path, problems: list[ConfigProblem]) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            # parse_float=Decimal keeps 0.0001 exact; TOML floats would otherwise become binary floats.
            return tomllib.load(fh, parse_float=Decimal)
    except FileNotFoundError:
        problems.append(ConfigProblem("(file)", f"file {path}", "the file does not exist", "check the path"))
    except tomllib.TOMLDecodeError as exc:
        problems.append(ConfigProblem("(file)", f"file {path}", f"not valid TOML: {exc}", "fix the syntax"))
    except OSError as exc:
        problems.append(ConfigProblem("(file)", f"file {path}", f"cannot read: {exc.strerror}", "check permissions"))
    return {}


def _file_layer(
    data: dict[str, Any], path: Path, problems: list[ConfigProblem]
) -> tuple[dict[str, Any], dict[Path_, Source]]:
    src = Source("file", str(path))
    prov: dict[Path_, Source] = {}
    out: dict[str, Any] = {}
    for section, body in data.items():
        if not isinstance(body, dict):
            out[section] = body
            prov[(section,)] = src
            continue
        sec: dict[str, Any] = {}
        for key, value in body.items():
            if key.endswith("_file") and (section, key[:-5]) in SECRET_FIELDS:
                target = key[:-5]
                if target in body:
                    problems.append(
                        ConfigProblem(
                            f"{section}.{target}",
                            str(src),
                            f"both {target} and {key} are set",
                            f"keep only one of {target} and {key}",
                        )
                    )
                    continue
                secret = _read_secret_file(str(value), f"{section}.{key}", problems, src)
                if secret is not None:
                    sec[target] = secret
                    prov[(section, target)] = Source("file", f"{path} ({key} = {value})")
                continue
            if (section, key) in _BOOL_FIELDS and not isinstance(value, bool):
                problems.append(ConfigProblem(f"{section}.{key}", str(src), f"must be true or false, not {value!r}",
                                              "write true or false, without quotes"))  # fmt: skip
                continue
            sec[key] = value
            prov[(section, key)] = src
        out[section] = sec
    return out, prov


def _env_layer(
    environ: Mapping[str, str], problems: list[ConfigProblem]
) -> tuple[dict[str, Any], dict[Path_, Source], tuple[str, ...]]:
    names = sorted(k for k in environ if k.upper().startswith(ENV_PREFIX))
    sections = set(Config.model_fields)
    prov: dict[Path_, Source] = {}
    plain: dict[str, str] = {}
    first_name: dict[Path_, str] = {}
    for name in names:
        parts = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        src = Source("env", name)
        if parts in first_name:
            # Names are case-insensitive: two spellings of one key would otherwise collapse into one, the last
            # silently winning (FREQTRADE__EXECUTION__DRY_RUN=true beside Freqtrade__Execution__Dry_Run=false).
            problems.append(
                ConfigProblem(
                    ".".join(parts), str(src), f"both {first_name[parts]} and {name} are set", "set only one of them"
                )
            )
            continue
        first_name[parts] = name
        if not parts[0] or parts[0] not in sections or len(parts) < 2 or not all(parts):
            problems.append(
                ConfigProblem(
                    ".".join(parts) or "(env)",
                    str(src),
                    "not a known configuration key",
                    f"sections are {', '.join(sorted(sections))}; check the spelling",
                )
            )
            continue
        value = environ[name]
        if len(parts) == 2 and (parts[0], parts[1]) in SECRET_FIELDS and not value and _file_form_set(environ, name):
            # Empty means "not set" (compose files list every variable, FREQTRADE__API__TOKEN= among them): it gives
            # way to its _FILE form, whichever order the two names sort in.
            continue
        if len(parts) == 2 and parts[1].endswith("_file") and (parts[0], parts[1][:-5]) in SECRET_FIELDS:
            if not value:  # empty means "not set" here too: no conflict with its secret, no file "" to read
                continue
            target = ENV_PREFIX + f"{parts[0]}__{parts[1][:-5]}".upper()
            if any(k.upper() == target and environ[k] for k in environ):  # an empty one is not set (above)
                problems.append(
                    ConfigProblem(
                        f"{parts[0]}.{parts[1][:-5]}",
                        str(src),
                        f"both {target} and {name} are set",
                        "set only one of them",
                    )
                )
                continue
            secret = _read_secret_file(value, ".".join(parts), problems, src)
            if secret is None:
                continue
            parts, value, src = (parts[0], parts[1][:-5]), secret, Source("env", f"{name} ({value})")
        elif (parts[0], parts[1]) in _COMMA_LIST_FIELDS and not value.lstrip().startswith("["):
            # Comma-separated lists are the common shell idiom; JSON lists are accepted too.
            plain[f"{ENV_PREFIX}{parts[0]}__{parts[1]}".lower()] = _json_list(value)
            prov[parts] = src
            continue
        plain[(ENV_PREFIX + "__".join(parts)).lower()] = value
        prov[parts] = src
    try:
        nested = MappingEnvSource(plain)()
    except SettingsError as exc:
        field_name = str(exc).split('"')[1] if '"' in str(exc) else "(env)"
        problems.append(
            ConfigProblem(
                field_name,
                "env",
                "cannot be parsed (expected JSON for lists and mappings)",
                'use a JSON value such as ["BTC/USDT"] or {"BTC": "0.5"}',
            )
        )
        nested = {}
    return {k: v for k, v in nested.items() if v is not None}, prov, tuple(names)


def _file_form_set(environ: Mapping[str, str], name: str) -> bool:
    """Whether the ``_FILE`` form of the variable `name` is set too (in any spelling) to something non-empty."""
    file_name = f"{name}_FILE".upper()
    return any(k.upper() == file_name and environ[k] for k in environ)


def _json_list(value: str) -> str:
    return json.dumps([item.strip() for item in value.split(",") if item.strip()])


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _fix_for(err_type: str, path: Path_, env_name: str) -> str:
    if err_type == "extra_forbidden":
        model: type[BaseModel] = Config
        for part in path[:-1]:
            sub = model.model_fields.get(part)
            ann = getattr(sub, "annotation", None) if sub else None
            if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
                break
            model = ann
        return f"remove it or fix the spelling; valid keys here: {', '.join(model.model_fields)}"
    if err_type == "missing":
        return f"set it in the file or with {env_name}"
    if err_type.startswith(("greater_than", "less_than")):
        return "use a value inside the allowed range"
    if err_type in ("literal_error", "enum"):
        return "use one of the allowed values"
    return f"correct the value in its source ({env_name} or the file)"


def _problems_from(exc: ValidationError, loaded: LoadedConfig) -> list[ConfigProblem]:
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        path = tuple(str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-union")))
        # pydantic reports union branches separately (e.g. "decimal", "dict[str,...]"): keep the field path.
        path = tuple(p for p in path if p not in {"decimal", "dict[str,decimal]"} and "[" not in p) or ("(config)",)
        msg = err["msg"].removeprefix("Value error, ")
        # Cross-field validators name the field they blame as "section.key: message".
        named = _NAMED_MSG.match(msg)
        if named:
            path, msg = tuple(named.group(1).split(".")), named.group(2)
        env_name = ENV_PREFIX + "__".join(path).upper()
        fix = f"as the message says (from the environment: {env_name})" if named else _fix_for(err["type"], path,
                                                                                               env_name)  # fmt: skip
        out.append(ConfigProblem(".".join(path), str(loaded.source_of(path)), msg, fix))
    unique: dict[tuple[str, str], ConfigProblem] = {}
    for problem in out:
        unique.setdefault((problem.path, problem.message), problem)
    return list(unique.values())


def resolve_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    for_trading: bool = True,
) -> tuple[LoadedConfig | None, list[ConfigProblem]]:
    """Resolve and validate the configuration, collecting every problem instead of stopping at the first.

    Args:
        path: the TOML file, or None for defaults and environment only.
        environ: the environment to read (defaults to ``os.environ``).
        for_trading: the configuration is to run the engine (the daemon, check-config): live mode needs
            exchange.key and exchange.secret, and the SQLite database's directory must let it be created and
            written. False for commands that only read the database or talk to a running daemon.

    Returns:
        The loaded configuration (None when invalid) and the list of problems (empty when valid).
    """
    env = dict(os.environ if environ is None else environ)
    problems: list[ConfigProblem] = []
    file_path = Path(path) if path is not None else None
    file_data: dict[str, Any] = {}
    prov: dict[Path_, Source] = {}
    if file_path is not None:
        raw = _load_file(file_path, problems)
        file_data, prov = _file_layer(raw, file_path, problems)
    env_data, env_prov, env_names = _env_layer(env, problems)
    prov.update(env_prov)
    partial = LoadedConfig(Config(), prov, env_names, file_path)
    try:
        config = Config.model_validate(_merge(file_data, env_data), context={"for_trading": for_trading})
    except ValidationError as exc:
        return None, problems + _problems_from(exc, partial)
    where = sqlite_location_problem(config.database.url) if for_trading else None
    if where is not None:
        fix = "point database.url at a file in a directory this user can create and write to"
        problems.append(ConfigProblem("database.url", str(partial.source_of(("database", "url"))), where, fix))
    if problems:
        return None, problems
    return LoadedConfig(config, prov, env_names, file_path, tuple(config.secret_values())), []


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None, *, for_trading: bool = True
) -> LoadedConfig:
    """Resolve the configuration or raise :class:`ConfigError` listing every problem (see `resolve_config`)."""
    loaded, problems = resolve_config(path, environ, for_trading=for_trading)
    if loaded is None:
        raise ConfigError(problems)
    return loaded
