"""A route that declares parameters (Powertools' `Query`, a path parameter) is validated by Powertools'
OpenAPI middleware, which `http.make_app` turns on only when asked (`typed_parameters=True`: bench/README.md,
it costs every request of a function). Without it a `Query` parameter would not be passed, a 500 instead of
a 422; path parameters are held to the same rule, so that each is validated before the route runs. Each
function asks for it exactly when one of its routes declares a parameter, and every resolver is made by
`http.make_app`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = sorted(ROOT.glob("functions/*/app.py"))
METHODS = {"get", "post", "put", "delete", "patch", "head", "route"}


def asks_for_typed_parameters(tree: ast.Module) -> bool | None:
    """What the module's `http.make_app(...)` call says; None when it makes no resolver."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "make_app"
        ):
            for keyword in node.keywords:
                if keyword.arg == "typed_parameters":
                    assert isinstance(keyword.value, ast.Constant), "typed_parameters must be a literal"
                    return bool(keyword.value.value)
            return False
    return None


def routes_with_parameters(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr in METHODS
                    and isinstance(decorator.func.value, ast.Name)
                    and decorator.func.value.id == "app"
                    and (node.args.posonlyargs or node.args.args or node.args.kwonlyargs)
                ):
                    found.append(node.name)
    return found


def test_the_functions_are_found() -> None:
    assert len(APPS) >= 9


@pytest.mark.parametrize("app", APPS, ids=lambda p: p.parent.name)
def test_the_validation_middleware_is_on_exactly_where_a_route_declares_parameters(app: Path) -> None:
    tree = ast.parse(app.read_text(), str(app))
    asked = asks_for_typed_parameters(tree)
    declared = routes_with_parameters(tree)
    if asked is None:  # no HTTP resolver (the stream and key-rotation functions): nor any route
        assert "Resolver(" not in app.read_text() and not declared, f"{app}: a resolver not made by make_app"
        return
    assert asked == bool(declared), f"{app}: typed_parameters={asked}, routes with parameters: {declared}"
