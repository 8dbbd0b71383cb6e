"""The `payment` command as an operator uses it: help everywhere, clear errors, migrate and seed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import asyncpg
import pytest

from payment.dburl import libpq_url
from payment.security import verify_password

COMMANDS = ["dev", "serve", "worker", "sandbox", "db:migrate", "db:seed", "audit:verify", "secret"]
# The `payment` script installed beside this interpreter (found without .venv/bin on PATH, e.g. `.venv/bin/pytest`).
PAYMENT = shutil.which("payment", path=os.path.dirname(sys.executable)) or shutil.which("payment")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    executable = PAYMENT or sys.executable
    argv = [executable, *args] if executable != sys.executable else [sys.executable, "-m", "payment.cli", *args]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "APP_ENV", "ADMIN_"))}
    return subprocess.run(
        argv, capture_output=True, text=True, env={**clean, **(env or {})}, timeout=timeout, check=False
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    assert "Usage: payment" in result.stdout and command in result.stdout


def test_top_level_help_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["serve", "--port", "0"], {}, "Invalid value for '--port'"),
        (["serve"], {"APP_ENV": "production"}, "SECRET_KEY is required"),
        (["db:migrate"], {"APP_ENV": "nonsense"}, "APP_ENV must be one of"),
        (
            ["db:seed"],
            {
                "APP_ENV": "staging",
                "SECRET_KEY": "Kq3vR8xW2nZ5tY7uB1cD4eF6gH9jL0mP",
                "DATABASE_URL": "postgresql://u:p@127.0.0.1:1/x",
                "STRIPE_SECRET_KEY": "sk_test_1",
                "STRIPE_WEBHOOK_SECRET": "whsec_Qw2Er4Ty6Ui8Op0AsDfGhJkLzXcVbNm1",
            },
            "ADMIN_EMAIL and ADMIN_PASSWORD",
        ),
        (["sandbox", "--host", "0.0.0.0"], {}, "loopback only"),
        (["no-such-command"], {}, "No such command"),
    ],
)
def test_bad_input_exits_non_zero_with_a_clear_message(args: list[str], env: dict[str, str], message: str) -> None:
    result = run(*args, env=env)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_secret_prints_a_key_production_accepts() -> None:
    from payment.config import load_settings

    first, second = run("secret"), run("secret")
    assert first.returncode == 0 and first.stdout.strip() != second.stdout.strip()
    key = first.stdout.strip()
    assert len(key) >= 64
    assert (
        load_settings(
            {
                "APP_ENV": "production",
                "SECRET_KEY": key,
                "DATABASE_URL": "postgresql://u:p@db/x",
                "STRIPE_SECRET_KEY": "sk_live_1",
                "STRIPE_WEBHOOK_SECRET": "whsec_" + key[:32],
                "BASE_URL": "https://pay.example.com",
                "ADMIN_PASSWORD": key,
                "SMTP_URL": "smtp://smtp.example.com:587",
            }
        ).secret_key
        == key
    )


def test_unreachable_database_is_reported_without_its_password() -> None:
    result = run("db:migrate", env={"DATABASE_URL": "postgresql://payment:s3cret-pw@127.0.0.1:1/payment"})
    assert result.returncode != 0
    assert "migration failed" in result.stderr
    assert "s3cret-pw" not in result.stderr and "Traceback" not in result.stderr


async def test_migrate_then_seed_twice_keeps_the_first_password(database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "APP_ENV": "development"}
    migrated = run("db:migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "up to date" in migrated.stdout

    first = run("db:seed", env={**env, "ADMIN_EMAIL": "ops@example.com", "ADMIN_PASSWORD": "first-password-1"})
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    second = run("db:seed", env={**env, "ADMIN_EMAIL": "ops@example.com", "ADMIN_PASSWORD": "second-password"})
    assert second.returncode == 0, second.stderr
    assert "password unchanged" in second.stdout

    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        rows = await conn.fetch("SELECT password_hash FROM admin_users WHERE email = 'ops@example.com'")
    finally:
        await conn.close()
    assert len(rows) == 1
    assert verify_password("first-password-1", rows[0]["password_hash"])


def test_seed_refuses_an_overlong_password(database_url: str) -> None:
    result = run(
        "db:seed", env={"DATABASE_URL": database_url, "ADMIN_EMAIL": "long@example.com", "ADMIN_PASSWORD": "x" * 73}
    )
    assert result.returncode != 0
    assert "72 bytes" in result.stderr and "Traceback" not in result.stderr


def test_sandbox_command_serves_the_stripe_api_on_loopback() -> None:
    import time

    import stripe

    from payment.embedded_pg import free_port

    port = free_port()
    executable = PAYMENT
    assert executable is not None
    # the `with` closes the output pipe once the process is gone
    with subprocess.Popen(
        [executable, "sandbox", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        try:
            client = stripe.StripeClient(
                "sk_test_cli", base_addresses={"api": f"http://127.0.0.1:{port}"}, max_network_retries=0
            )
            deadline = time.monotonic() + 20
            while True:
                try:
                    customer = client.v1.customers.create(params={"email": "cli@example.com"})
                    break
                except stripe.APIConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert customer.id.startswith("cus_") and customer.email == "cli@example.com"
            with pytest.raises(stripe.AuthenticationError):
                stripe.StripeClient(
                    "sk_live_nope", base_addresses={"api": f"http://127.0.0.1:{port}"}, max_network_retries=0
                ).v1.customers.list()
        finally:
            process.terminate()
            process.wait(20)
    assert process.returncode in (0, -15, 143)
