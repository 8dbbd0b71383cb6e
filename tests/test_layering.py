"""Dependencies point one way: models -> services -> adapters; only gateway.py imports the stripe SDK."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPOSITION_ROOTS = {"payment/app.py", "payment/cli.py", "payment/devserver.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_core_never_imports_the_adapters() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _files("payment") if str(path.relative_to(ROOT)) not in COMPOSITION_ROOTS
        for name in _imports(path) if name.split(".")[0] in ("admin_views", "billing_ui")
    ]
    assert offenders == []


def test_models_import_no_services_or_adapters() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _files("payment/models")
        for name in _imports(path)
        if name.startswith("payment.") and not name.startswith(("payment.models", "payment.errors"))
    ]
    assert offenders == []


def test_only_the_gateway_imports_the_stripe_sdk() -> None:
    allowed = {"payment/stripe/gateway.py"}
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("payment", "admin_views", "billing_ui")
        for path in _files(folder)
        if str(path.relative_to(ROOT)) not in allowed and not str(path.relative_to(ROOT)).startswith("stripe_sandbox")
        and any(name == "stripe" or name.startswith("stripe.") for name in _imports(path))
    ]
    assert offenders == []
