"""Dependencies point one way: models -> services -> adapters, with no import circle and no import hidden in a
function; only bootstrap.py assembles the adapters; only gateway.py imports the stripe SDK."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPOSITION_ROOTS = {"payment/bootstrap.py"}
PACKAGES = ("payment", "admin_views", "billing_ui", "stripe_sandbox")
# (file, imported module): the only imports allowed inside a function, each an optional or heavy library.
OPTIONAL_IMPORTS = {
    # the offline Stripe emulator is a development package, absent from the production image (dev commands only)
    ("payment/devserver.py", "stripe_sandbox"),
    # uvloop is not there on every platform; asyncio's loop stands in
    ("payment/serving.py", "uvloop"),
    # WeasyPrint loads Pango through cffi on import: only the processes that render documents pay for it
    ("payment/documents/rendering.py", "weasyprint"),
    ("payment/documents/rendering.py", "weasyprint.urls"),
    ("payment/documents/thai_text.py", "weasyprint.pdf"),
    ("payment/documents/thai_text.py", "fontTools.ttLib"),
}
# The CLI imports each command's modules inside the command: `payment --help` stays fast. These imports are edges of
# the import graph all the same, so they cannot hide a circle.
COMMAND_SCOPED = {"payment/cli.py"}


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
        for path in _files("payment")
        if str(path.relative_to(ROOT)) not in COMPOSITION_ROOTS
        for name in _imports(path)
        if name.split(".")[0] in ("admin_views", "billing_ui")
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
        if str(path.relative_to(ROOT)) not in allowed
        and any(name == "stripe" or name.startswith("stripe.") for name in _imports(path))
    ]
    assert offenders == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in it: a circle behind TYPE_CHECKING counts too)."""
    paths = {_module_name(path): path for package in PACKAGES for path in _files(package)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from payment import migrate` imports the module payment.migrate; `from payment.x import y`, x
                modules = {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in paths}
                targets.update(modules if len(modules) == len(node.names) else {base, *modules})
        graph[name] = {target for target in targets if target in paths and target != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_circle() -> None:
    assert _circles(_import_graph()) == []


def test_the_circle_finder_sees_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_inside_a_function_except_the_optional_ones() -> None:
    offenders = []
    for package in ("payment", "admin_views", "billing_ui"):
        for path in _files(package):
            tree = ast.parse(path.read_text())
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(function):
                    if not isinstance(node, ast.Import | ast.ImportFrom):
                        continue
                    names = (
                        [alias.name for alias in node.names]
                        if isinstance(node, ast.Import)
                        else [node.module or "."]
                        if isinstance(node, ast.ImportFrom)
                        else []
                    )
                    rel = str(path.relative_to(ROOT))
                    offenders += [
                        f"{rel}:{node.lineno} imports {name}"
                        for name in names
                        if (rel, name) not in OPTIONAL_IMPORTS
                        and not (rel in COMMAND_SCOPED and name.startswith("payment"))
                    ]
    assert offenders == []
