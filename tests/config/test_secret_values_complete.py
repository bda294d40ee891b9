"""Found by a mutation audit (four secrets could leave the redactor without a test failing): every secret field of the
configuration is registered with the log redactor (`secret_values`)."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from engine.config import Config

SENTINELS = {
    ("exchange", "key"): "SENTINELkey" + "K" * 53,
    ("exchange", "secret"): "SENTINELsecret" + "S" * 50,
    ("database", "password"): "SENTINEL-db-password",
    ("alerts", "webhook_token"): "SENTINEL-webhook-token",
    ("alerts", "telegram_token"): "123456:SENTINEL-telegram-token",
    ("api", "token"): "SENTINEL-api-token-0123456789abcdef",
}


def _secret_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        text = str(ann)
        if ann is SecretStr or "SecretStr" in text:
            out.add((*prefix, name))
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _secret_fields(ann, (*prefix, name))
    return out


def test_every_secret_field_is_known_here() -> None:
    # a new SecretStr field must be added to SENTINELS (and so to the check below)
    assert _secret_fields(Config) <= set(SENTINELS), _secret_fields(Config) - set(SENTINELS)


def test_secret_values_holds_every_configured_secret() -> None:
    data: dict[str, dict[str, str]] = {}
    for (section, key), value in SENTINELS.items():
        data.setdefault(section, {})[key] = value
    data["database"]["url"] = "postgresql://bexec@db.example.com:5432/engine"
    data["alerts"]["telegram_chat_id"] = "42"
    values = Config.model_validate(data).secret_values()
    missing = [path for path, value in SENTINELS.items() if value not in values]
    assert not missing, f"secrets not registered with the log redactor: {missing}"
