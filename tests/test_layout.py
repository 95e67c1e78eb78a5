"""The package's shape: pure core imports only the stdlib, __all__ is honest, no print()."""

import ast
import importlib
import pathlib
import sys

import pytest

import onebot_ref

PACKAGE = pathlib.Path(onebot_ref.__file__).parent
PURE = ["errors", "codec", "message", "registry", "dedup", "api", "calls", "framer", "http_head"]
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))


def imports_of(path):
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


@pytest.mark.parametrize("name", [m for m in PURE if (PACKAGE / f"{m}.py").exists()])
def test_pure_modules_import_only_the_stdlib_and_each_other(name):
    for module, level in imports_of(PACKAGE / f"{name}.py"):
        top = module.split(".")[0]
        if level:  # relative import: must stay inside the pure core
            assert top in PURE or top == "", f"{name} imports .{module}"
        else:
            assert top in sys.stdlib_module_names, f"{name} imports {module}"
            io = ("socket", "ssl", "socketserver", "selectors", "http.client", "http.server")
            assert module not in io, f"{name} does I/O through {module}"


@pytest.mark.parametrize("name", MODULES)
def test_every_module_has_an_all_that_exists(name):
    module = importlib.import_module(f"onebot_ref.{name}")
    assert module.__doc__, f"{name} has no docstring"
    for export in getattr(module, "__all__", []):
        assert hasattr(module, export), f"{name}.__all__ lists missing {export}"


def test_package_all_is_importable():
    for name in onebot_ref.__all__:
        assert hasattr(onebot_ref, name)


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_library_never_prints(path):
    if path.stem in ("demo", "doctor", "__main__"):
        pytest.skip("command-line front ends print by design")
    tree = ast.parse(path.read_text("utf-8"))
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
    ]
    if calls and 'if __name__ == "__main__"' in path.read_text("utf-8"):
        pytest.skip("module has a command-line entry point")
    assert not calls, f"{path.name} calls print()"


def test_no_module_installs_logging_handlers():
    # Only a command-line main() may configure logging; library code never does.
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        mains = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "main"]
        allowed = {id(n) for m in mains for n in ast.walk(m)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("basicConfig", "addHandler"):
                assert id(node) in allowed, f"{path.name} configures logging outside main()"


def test_readme_code_blocks_compile_and_import_what_exists():
    readme = (PACKAGE.parent / "README.md").read_text("utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    assert len(blocks) >= 8
    for block in blocks:
        tree = ast.parse(block)  # a syntax error fails here
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("onebot_ref"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"README imports missing {alias.name}"
