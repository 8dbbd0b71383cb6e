"""Settings: development runs on defaults; staging and production refuse to start without their secrets."""

from __future__ import annotations

import pytest

from payment.config import DEV_ADMIN_PASSWORD, DEV_SECRET_KEY, DEV_STRIPE_WEBHOOK_SECRET, load_settings
from payment.errors import ConfigError

PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "Vb7-kQ2zR9xLm4Tn8Ws1Yc6Hd3Jf5Gp0Ua_e",
    "DATABASE_URL": "postgresql://u:p@db:5432/payment",
    "STRIPE_SECRET_KEY": "sk_live_abc",
    "STRIPE_WEBHOOK_SECRET": "whsec_N4vK8qT2mR7xW1zB5cY9dF3gH6jL0pS",
    "BASE_URL": "https://payment.aquoris.ai",
    "SMTP_URL": "smtp://billing:s3cret@smtp.example.com:587",
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


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SMTP_URL"]
)
def test_production_refuses_to_start_without_a_secret(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        load_settings(env)


def test_without_smtp_production_refuses_to_start_and_staging_starts_with_a_warning() -> None:
    with pytest.raises(ConfigError, match="SMTP_URL is required in production"):
        load_settings({k: v for k, v in PRODUCTION.items() if k != "SMTP_URL"})
    assert load_settings(PRODUCTION).mail_warning is None
    staging = {k: v for k, v in PRODUCTION.items() if k != "SMTP_URL"} | {"APP_ENV": "staging"}
    warning = load_settings(staging).mail_warning
    assert warning is not None and warning.startswith("SMTP_URL is not set")
    assert load_settings({}).mail_warning is not None  # development: `payment dev` starts its own catcher


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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APP_ENV": "prod"}, "APP_ENV must be one of"),
        ({"LOGIN_RATE_LIMIT": "many"}, "LOGIN_RATE_LIMIT must be a whole number"),
        ({"LOGIN_RATE_LIMIT": "0"}, "at least 1"),
        ({"DATABASE_URL": "mysql://x/y"}, "postgresql"),
        ({"STRIPE_SECRET_KEY": "pk_test_1"}, "sk_test_"),
        ({"STRIPE_WEBHOOK_SECRET": "secret"}, "whsec_"),
        ({"BASE_URL": "not a url"}, "BASE_URL"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_login_rate_limit_is_configurable() -> None:
    assert load_settings({"LOGIN_RATE_LIMIT": "7"}).login_rate_limit == 7


@pytest.mark.parametrize("app_env", ["staging", "production"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECRET_KEY", "change-me-to-64-random-characters"),  # the .env.example placeholder
        ("SECRET_KEY", DEV_SECRET_KEY),
        ("SECRET_KEY", "a" * 32),
        ("SECRET_KEY", "abababababababababababababababab"),
        ("SECRET_KEY", "0123456789012345678901234567890123456789"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_change_me"),
        ("STRIPE_WEBHOOK_SECRET", DEV_STRIPE_WEBHOOK_SECRET),
        ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_" + "a" * 32),
        ("STRIPE_WEBHOOK_SECRET", "whsec_N4vK8qT2mR7xW1zB5cY9dF3gH6jL0pS,whsec_change_me"),  # one weak of two
        ("ADMIN_PASSWORD", "change-me"),
        ("ADMIN_PASSWORD", DEV_ADMIN_PASSWORD),
        ("ADMIN_PASSWORD", "password1234"),
        ("ADMIN_PASSWORD", "aaaaaaaaaaaaaaaaaaaa"),
        ("AUDIT_CHAIN_KEY", "change-me-to-64-random-characters"),  # the .env.example placeholder
        ("AUDIT_CHAIN_KEY", "k" * 64),
    ],
)
def test_deployed_refuses_known_and_low_entropy_secrets(app_env: str, name: str, value: str) -> None:
    env = {**PRODUCTION, "APP_ENV": app_env, "STRIPE_SECRET_KEY": "sk_test_1" if app_env == "staging" else "sk_live_1"}
    with pytest.raises(ConfigError, match=name) as refused:
        load_settings({**env, name: value})
    hint = "Stripe dashboard" if name == "STRIPE_WEBHOOK_SECRET" else "payment secret"
    assert hint in refused.value.message and value not in refused.value.message


def test_development_keeps_its_defaults_and_a_strong_admin_password_is_accepted() -> None:
    assert load_settings({"ADMIN_PASSWORD": "change-me"}).admin_password == "change-me"
    strong = load_settings({**PRODUCTION, "ADMIN_PASSWORD": "Tq8-vanilla-Orbit-42-kettle"})
    assert strong.admin_password == "Tq8-vanilla-Orbit-42-kettle"


def test_deployed_refuses_to_trust_every_peer_for_the_client_address() -> None:
    with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS=\\* lets any client") as refused:
        load_settings({**PRODUCTION, "FORWARDED_ALLOW_IPS": "*"})
    assert "172.31.240.1" in refused.value.message
    assert load_settings({**PRODUCTION, "FORWARDED_ALLOW_IPS": "172.31.240.1"}).forwarded_allow_ips == "172.31.240.1"
    assert load_settings({**PRODUCTION}).forwarded_allow_ips == "127.0.0.1,::1"
    with pytest.raises(ConfigError, match="IP addresses or networks"):
        load_settings({"FORWARDED_ALLOW_IPS": "proxy.local"})


def test_production_requires_two_factor_unless_told_otherwise() -> None:
    assert load_settings(PRODUCTION).admin_require_2fa is True
    assert load_settings({**PRODUCTION, "ADMIN_REQUIRE_2FA": "false"}).admin_require_2fa is False
    assert load_settings({}).admin_require_2fa is False
    assert load_settings({"ADMIN_REQUIRE_2FA": "true"}).admin_require_2fa is True
    assert load_settings({}).admin_step_up_seconds == 300


def test_the_audit_chain_key_is_its_own_or_the_secret_key() -> None:
    assert load_settings(PRODUCTION).audit_chain_secret == PRODUCTION["SECRET_KEY"]
    chain_key = "Zq3vN8rT1wXb6Hc0Lp5Js9Gd2Fm7Ky4U"
    assert load_settings({**PRODUCTION, "AUDIT_CHAIN_KEY": chain_key}).audit_chain_secret == chain_key


def test_several_webhook_secrets_are_each_checked() -> None:
    two = "whsec_N4vK8qT2mR7xW1zB5cY9dF3gH6jL0pS, whsec_Q8wE3rT6yU1iO4pA7sD0fG2hJ5kL9zXc"
    settings = load_settings({**PRODUCTION, "STRIPE_WEBHOOK_SECRET": two})
    assert settings.webhook_secrets == (
        "whsec_N4vK8qT2mR7xW1zB5cY9dF3gH6jL0pS",
        "whsec_Q8wE3rT6yU1iO4pA7sD0fG2hJ5kL9zXc",
    )
    with pytest.raises(ConfigError, match="each secret"):
        load_settings({**PRODUCTION, "STRIPE_WEBHOOK_SECRET": "whsec_N4vK8qT2mR7xW1zB5cY9dF3gH6jL0pS,sk_live_1"})
