"""The type stub of the compiled module matches the module.

Every public name of ``meprop_native._core`` has an entry in ``_core.pyi`` and
the reverse, and every function's parameters (names, order, keyword-only,
defaults) are those of the binding, read from the signature line pybind11
writes at the top of each docstring. A new binding without a stub entry, or a
changed default, fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import meprop_native
from meprop_native import _core

PACKAGE_DIR = Path(meprop_native.__file__).resolve().parent
STUB = PACKAGE_DIR / "_core.pyi"


def _stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text(encoding="utf-8"))


def _stub_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    # Private helpers of the stub itself (type variables, aliases) are not API.
    return {n for n in names if not n.startswith("_") or n == "__version__"}


def _stub_functions(tree: ast.Module) -> dict[str, list[ast.FunctionDef]]:
    functions: dict[str, list[ast.FunctionDef]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions.setdefault(node.name, []).append(node)
    return functions


def _module_names() -> set[str]:
    return {n for n in dir(_core) if not n.startswith("_")} | {"__version__"}


def _shape(args: ast.arguments) -> list[tuple[str, str, object]]:
    """(name, kind, default) of each parameter; defaults as Python values."""
    positional = args.posonlyargs + args.args
    pos_defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    shape = []
    for arg, default in zip(positional, pos_defaults):
        shape.append((arg.arg, "positional", _value(default)))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        shape.append((arg.arg, "keyword", _value(default)))
    assert args.vararg is None and args.kwarg is None
    return shape


_REQUIRED = "<required>"


def _value(node: ast.expr | None) -> object:
    return _REQUIRED if node is None else ast.literal_eval(node)


def _binding_shape(name: str) -> list[tuple[str, str, object]]:
    signature = getattr(_core, name).__doc__.splitlines()[0]
    assert signature.startswith(f"{name}("), signature
    parsed = ast.parse(f"def {signature}: ...").body[0]
    assert isinstance(parsed, ast.FunctionDef)
    return _shape(parsed.args)


def test_stub_is_installed_with_py_typed():
    assert STUB.is_file()
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_stub_names_are_the_module_names():
    stub, module = _stub_names(_stub_tree()), _module_names()
    assert not module - stub, f"bindings without a stub entry: {sorted(module - stub)}"
    assert not stub - module, f"stub entries the module lacks: {sorted(stub - module)}"


@pytest.mark.parametrize(
    "name",
    sorted(n for n in _module_names() if callable(getattr(_core, n)) and not isinstance(getattr(_core, n), type)),
)
def test_stub_signature_matches_the_binding(name):
    overloads = _stub_functions(_stub_tree())[name]
    expected = _binding_shape(name)
    for node in overloads:
        assert _shape(node.args) == expected, f"{name}: stub {ast.unparse(node.args)}"
        assert node.returns is not None, f"{name}: the stub gives no return type"
        for arg in node.args.args + node.args.kwonlyargs:
            assert arg.annotation is not None, f"{name}: parameter {arg.arg} has no type"
