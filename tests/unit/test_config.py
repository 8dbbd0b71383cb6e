"""Settings: development runs on defaults; staging and production refuse to start without their secrets."""

from __future__ import annotations

import pytest

from payment.config import load_settings
from payment.errors import ConfigError

PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "s" * 40,
    "DATABASE_URL": "postgresql://u:p@db:5432/payment",
    "STRIPE_SECRET_KEY": "sk_live_abc",
    "STRIPE_WEBHOOK_SECRET": "whsec_abc",
    "BASE_URL": "https://payment.aquoris.ai",
}


def test_development_runs_on_defaults() -> None:
    settings = load_settings({})
    assert settings.app_env == "development"
    assert settings.database_url is None
    assert settings.login_rate_limit == 50
    assert settings.stripe_secret_key.startswith("sk_test_")


def test_production_with_everything_set_loads() -> None:
    settings = load_settings(PRODUCTION)
    assert settings.is_production and settings.login_rate_limit == 5


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"])
def test_production_refuses_to_start_without_a_secret(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        load_settings(env)


def test_production_refuses_a_test_stripe_key() -> None:
    with pytest.raises(ConfigError, match="test Stripe key"):
        load_settings({**PRODUCTION, "STRIPE_SECRET_KEY": "sk_test_abc"})


def test_production_refuses_the_sandbox_and_plain_http() -> None:
    with pytest.raises(ConfigError, match="STRIPE_API_BASE"):
        load_settings({**PRODUCTION, "STRIPE_API_BASE": "http://127.0.0.1:12111"})
    with pytest.raises(ConfigError, match="https"):
        load_settings({**PRODUCTION, "BASE_URL": "http://payment.aquoris.ai"})


def test_staging_accepts_test_keys_but_needs_secrets() -> None:
    staging = {**PRODUCTION, "APP_ENV": "staging", "STRIPE_SECRET_KEY": "sk_test_abc"}
    assert load_settings(staging).app_env == "staging"
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings({k: v for k, v in staging.items() if k != "SECRET_KEY"})


@pytest.mark.parametrize(("env", "message"), [
    ({"APP_ENV": "prod"}, "APP_ENV must be one of"),
    ({"LOGIN_RATE_LIMIT": "many"}, "LOGIN_RATE_LIMIT must be a whole number"),
    ({"LOGIN_RATE_LIMIT": "0"}, "at least 1"),
    ({"DATABASE_URL": "mysql://x/y"}, "postgresql"),
    ({"STRIPE_SECRET_KEY": "pk_test_1"}, "sk_test_"),
    ({"STRIPE_WEBHOOK_SECRET": "secret"}, "whsec_"),
    ({"BASE_URL": "not a url"}, "BASE_URL"),
])
def test_bad_values_are_refused_with_a_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_login_rate_limit_is_configurable() -> None:
    assert load_settings({"LOGIN_RATE_LIMIT": "7"}).login_rate_limit == 7


def test_production_requires_two_factor_unless_told_otherwise() -> None:
    assert load_settings(PRODUCTION).admin_require_2fa is True
    assert load_settings({**PRODUCTION, "ADMIN_REQUIRE_2FA": "false"}).admin_require_2fa is False
    assert load_settings({}).admin_require_2fa is False
    assert load_settings({"ADMIN_REQUIRE_2FA": "true"}).admin_require_2fa is True
    assert load_settings({}).admin_step_up_seconds == 300


def test_the_audit_chain_key_is_its_own_or_the_secret_key() -> None:
    assert load_settings(PRODUCTION).audit_chain_secret == PRODUCTION["SECRET_KEY"]
    assert load_settings({**PRODUCTION, "AUDIT_CHAIN_KEY": "k" * 64}).audit_chain_secret == "k" * 64
