"""Architecture contracts, enforced with import-linter.

- ``prunekit.core`` imports neither ``builtin``, ``matrix``, ``report`` nor ``cli``;
- ``prunekit.report`` reads run directories only through ``prunekit.core.rundir.layout``;
  (both in pyproject.toml, ``[tool.importlinter]``; run ``lint-imports`` to check by hand)
- every plugin under ``plugins/`` imports only ``prunekit.api`` (its tests also
  ``prunekit.testing``): a contract per plugin package, generated here so a new
  plugin is covered the moment it is added; the built-in plugins in
  ``prunekit/builtin/`` too (they may also import each other).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e '.[test]')")
from importlinter.cli import lint_imports  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
#: Everything of prunekit but its public surface: what plugin code may not import.
PRIVATE = [
    "prunekit.core",
    "prunekit.builtin",
    "prunekit.matrix",
    "prunekit.report",
    "prunekit.cli",
    "prunekit.errors",
    "prunekit.hookspecs",
    "prunekit.progress",
]
#: The plugins shipped with the core, held to the same rule (they may import each other).
BUILTIN = "prunekit.builtin"
HOW = "import it from prunekit.api (and, in tests, prunekit.testing); if prunekit.api lacks it, ask for it to be added there"


def plugin_packages() -> dict[str, Path]:
    """Importable package name -> its folder, for every plugin distribution under plugins/."""
    found = {}
    for pyproject in sorted(PLUGINS.glob("*/pyproject.toml")):
        for init in sorted(pyproject.parent.glob("*/__init__.py")):
            if init.parent.name != "tests":
                found[init.parent.name] = init.parent
    return found


def run_lint_imports(config: Path) -> tuple[int, str]:
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        code = lint_imports(config_filename=str(config), no_cache=True, no_logo=True)
    return code, out.getvalue()


def test_core_and_report_contracts_are_kept():
    code, output = run_lint_imports(ROOT / "pyproject.toml")
    assert code == 0, output


def test_plugins_import_only_prunekit_api(tmp_path):
    packages = plugin_packages()
    assert {"prunekit_adamwprune", "prunekit_movement", "prunekit_nvidia_mem", "prunekit_rocm_mem"} <= set(packages)
    for name, folder in packages.items():
        if name not in sys.modules and str(folder.parent) not in sys.path:
            sys.path.append(str(folder.parent))  # a plugin added but not installed yet still gets checked
    lines = ["[importlinter]", "root_packages =", "    prunekit", *(f"    {p}" for p in packages), ""]
    lines += [
        "[importlinter:contract:plugins]",
        "name = plugins import only prunekit.api",
        "type = forbidden",
        "allow_indirect_imports = true",
        "source_modules =",
        *(f"    {p}" for p in packages),
        "forbidden_modules =",
        *(f"    {m}" for m in [*PRIVATE, "prunekit.testing"]),
        "",
        "[importlinter:contract:builtin]",
        "name = the built-in plugins import only prunekit.api (and each other)",
        "type = forbidden",
        "allow_indirect_imports = true",
        "source_modules =",
        f"    {BUILTIN}",
        "forbidden_modules =",
        *(f"    {m}" for m in [*PRIVATE, "prunekit.testing"] if m != BUILTIN),
    ]
    config = tmp_path / "plugins.ini"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, output = run_lint_imports(config)
    assert code == 0, f"A plugin imports prunekit's internals; {HOW}.\n{output}"


def _prunekit_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module] if node.module != "prunekit" else [f"prunekit.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        found += [(node.lineno, m) for m in modules if m == "prunekit" or m.startswith("prunekit.")]
    return found


def test_plugin_code_and_tests_import_nothing_else_from_prunekit():
    """Also ``from prunekit import hookimpl`` and test files, which import-linter does not see."""
    problems = []
    builtin = sorted((ROOT / "prunekit" / "builtin").glob("*.py"))
    for path in [*sorted(PLUGINS.glob("*/**/*.py")), *builtin]:
        if "build" in path.parts or ".egg-info" in str(path):
            continue
        allowed = ("prunekit.api", "prunekit.testing") if "tests" in path.parts else ("prunekit.api",)
        allowed += (BUILTIN,) if path in builtin else ()
        for line, module in _prunekit_imports(path):
            if not any(module == a or module.startswith(a + ".") for a in allowed):
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not problems, f"Plugins import only {' and '.join(('prunekit.api', 'prunekit.testing'))}; {HOW}:\n" + "\n".join(
        problems
    )


ROOMS = sorted(p.parent for p in (ROOT / "prunekit" / "core").glob("*/__init__.py"))


@pytest.mark.parametrize("room", ROOMS, ids=lambda p: p.name)
def test_each_room_of_core_names_every_module_in_its_map_and_the_architecture_page(room: Path) -> None:
    """A newcomer finds a module from its room's ``__init__`` docstring and docs/architecture.md's table."""
    modules = sorted(p.stem for p in room.glob("*.py") if p.stem != "__init__")
    docstring = ast.get_docstring(ast.parse((room / "__init__.py").read_text(encoding="utf-8"))) or ""
    missing = [m for m in modules if f":mod:`.{m}`" not in docstring]
    assert not missing, f"prunekit/core/{room.name}/__init__.py's map does not name {missing}"
    row = next(
        (
            line
            for line in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines()
            if line.startswith(f"| `{room.name}/` |")
        ),
        "",
    )
    absent = [m for m in modules if f"`{m}`" not in row]
    assert row and not absent, f"docs/architecture.md's row for {room.name}/ does not name {absent}"
