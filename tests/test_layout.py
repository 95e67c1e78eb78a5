"""The package's shape: pure core imports only the stdlib, __all__ is honest, no print()."""

import ast
import importlib
import pathlib
import sys
from collections.abc import Iterator

import pytest

import onebot_ref

PACKAGE = pathlib.Path(onebot_ref.__file__).parent
PURE = [
    "errors", "codec", "message", "registry", "api", "framer",
    "_dedup", "_calls", "_http_head", "_auth", "_ws_protocol", "_types",
    "_commands", "_conversation", "_limiter",
]  # fmt: skip
SOURCES = sorted(PACKAGE.rglob("*.py"))
MODULES = sorted(  # dotted names under onebot_ref: "ws_server", "testing", "testing._fake"...
    ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
    for p in SOURCES
    if p.stem != "__main__" and p != PACKAGE / "__init__.py"
)


def imports_of(path: pathlib.Path) -> Iterator[tuple[str, int]]:
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


@pytest.mark.parametrize("name", [m for m in PURE if (PACKAGE / f"{m}.py").exists()])
def test_pure_modules_import_only_the_stdlib_and_each_other(name: str) -> None:
    for module, level in imports_of(PACKAGE / f"{name}.py"):
        top = module.split(".")[0]
        if level:  # relative import: must stay inside the pure core
            assert top in PURE or top == "", f"{name} imports .{module}"
        else:
            assert top in sys.stdlib_module_names, f"{name} imports {module}"
            io = ("socket", "ssl", "socketserver", "selectors", "http.client", "http.server")
            assert module not in io, f"{name} does I/O through {module}"


@pytest.mark.parametrize("name", MODULES)
def test_every_module_has_an_all_that_exists(name: str) -> None:
    module = importlib.import_module(f"onebot_ref.{name}")
    assert module.__doc__, f"{name} has no docstring"
    for export in getattr(module, "__all__", []):
        assert hasattr(module, export), f"{name}.__all__ lists missing {export}"


def test_package_all_is_importable() -> None:
    for name in onebot_ref.__all__:
        assert hasattr(onebot_ref, name)


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in SOURCES
        if p.relative_to(PACKAGE).as_posix() not in ("demo.py", "doctor/__init__.py")
    ],
    ids=lambda p: p.relative_to(PACKAGE).as_posix(),
)
def test_library_never_prints(path: pathlib.Path) -> None:
    # A command-line main() may print, as it may configure logging; library code never does.
    tree = ast.parse(path.read_text("utf-8"))
    mains = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "main"]
    allowed = {id(n) for m in mains for n in ast.walk(m)}
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
        and id(n) not in allowed
    ]  # fmt: skip
    assert not calls, f"{path.name} calls print() outside main()"


def test_no_module_installs_logging_handlers() -> None:
    # Only a command-line main() may configure logging; library code never does.
    for path in SOURCES:
        tree = ast.parse(path.read_text("utf-8"))
        mains = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "main"]
        allowed = {id(n) for m in mains for n in ast.walk(m)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("basicConfig", "addHandler"):
                assert id(node) in allowed, f"{path.name} configures logging outside main()"


def test_readme_code_blocks_compile_and_import_what_exists() -> None:
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text("utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    assert len(blocks) >= 8
    for block in blocks:
        tree = ast.parse(block)  # a syntax error fails here
        for node in ast.walk(tree):
            # node.module is None for "from . import x": no module of ours by name
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("onebot_ref"):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    assert hasattr(module, alias.name), f"README imports missing {alias.name}"


# The WebSocket side in layers: each may import only the ones below it, never one above or
# beside it, and no TYPE_CHECKING back-reference either (every import statement counts).
WS_LAYERS = [
    ["framer"],  # bytes <-> frames and messages
    ["_ws_protocol"],  # the rules and an explicit state
    ["_ws_connection", "_serve", "_ws_dial"],  # threads, sockets, TLS; accepting; dialling
    ["_ws_reader"],  # one thread reading many connections
    ["_ws_listener"],  # a generic server, policy by composition
    ["ws_server", "ws_client"],  # the modes: OneBot policy
]


def _ours(path: pathlib.Path) -> Iterator[str]:
    """The package's modules that ``path`` imports, however it spells the import."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level and not module:  # from . import x, y
                yield from (alias.name for alias in node.names)
            elif node.level:
                yield module.split(".")[0]
            elif module == "onebot_ref":
                yield from (alias.name for alias in node.names)
            elif module.startswith("onebot_ref."):
                yield module.split(".")[1]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("onebot_ref."):
                    yield alias.name.split(".")[1]


@pytest.mark.parametrize(
    ("rank", "name"), [(r, n) for r, names in enumerate(WS_LAYERS) for n in names]
)
def test_websocket_layers_import_only_downwards(rank: int, name: str) -> None:
    above = {n for names in WS_LAYERS[rank:] for n in names} - {name}
    wrong = sorted(set(_ours(PACKAGE / f"{name}.py")) & above)
    assert not wrong, f"{name} imports {wrong}, a layer at or above its own"


def _siblings(path: pathlib.Path, package: str) -> Iterator[str]:
    """The modules of ``path``'s own subpackage (``testing``, ``doctor``, ``record``) it imports."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 and not module:  # from . import x, y
                yield from (alias.name for alias in node.names)
            elif node.level == 1:
                yield module.split(".")[0]
            elif module.startswith(f"onebot_ref.{package}."):
                yield module.split(".")[2]


@pytest.mark.parametrize("package", ["", "testing", "doctor", "record"])
def test_the_package_modules_import_each_other_without_a_cycle(package: str) -> None:
    """No module imports one that imports it back, directly or around a circle.

    In the package itself and in each subpackage. Every import statement
    counts (``TYPE_CHECKING`` ones and those inside functions too): a lower
    module that needs something of a higher one names what it needs in a
    protocol of its own (``_commands.Tally``, ``_http_handler.Owner``,
    ``testing._host.Host``, ``testing._replay.Stage``) instead of importing
    the class.
    """
    folder = PACKAGE / package if package else PACKAGE
    modules = {path.stem: path for path in folder.glob("*.py") if path.stem != "__init__"}

    def imported_by(path: pathlib.Path) -> set[str]:
        return set(_siblings(path, package) if package else _ours(path))

    imports = {name: imported_by(path) & set(modules) - {name} for name, path in modules.items()}

    def circle_from(start: str) -> list[str] | None:
        """A path of imports from ``start`` back to itself, if there is one (depth first)."""
        todo = [(start, [start])]
        seen: set[str] = set()
        while todo:
            name, path = todo.pop()
            for nxt in sorted(imports[name]):
                if nxt == start:
                    return [*path, start]
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append((nxt, [*path, nxt]))
        return None

    circles = [c for name in sorted(modules) if (c := circle_from(name)) is not None]
    assert not circles, f"import circles: {[' -> '.join(c) for c in circles]}"
