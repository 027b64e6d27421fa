"""The manual (docs/, built by `mkdocs build --strict` in `make test`) and the README stay true to the code:
every code block is included from, or checked against, a tested file."""

from __future__ import annotations

import importlib.util
import inspect
import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from prunekit import hookspecs
from prunekit.cli import cli
from prunekit.core.config.settings import FIELD_NAMES, RunConfig, config_from_mapping
from prunekit.core.plugins import loading as plugins
from prunekit.testing.pruner_conformance import check_pruner
from prunekit.testing.runs import short_run

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(DOCS.rglob("*.md"))
PLUGIN_READMES = sorted((ROOT / "plugins").glob("*/README.md"))  # included into docs/bundled/
FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```", re.M | re.S)
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$')
#: Examples under docs/examples/ and the test that runs each.
EXAMPLES = {"ten_line_plugin.py": "test_the_ten_line_plugin_prunes_in_a_real_run"}
#: Files a docs page may include as code: the suite tests them (plugins/ and prunekit/ by their own tests).
TESTED_ROOTS = ("plugins/", "prunekit/", "docs/examples/")
SHELL = ("", "bash", "sh", "shell", "console")
MLFLOW_TAGS = {"prunekit.run_dir", "prunekit.group"}  # names of tags (plugins/prunekit-mlflow), not of code
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


def _blocks(path: Path) -> list[tuple[str, str]]:
    return FENCE.findall(path.read_text(encoding="utf-8"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_is_short_and_links_into_the_docs():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md is {len(lines)} lines; the manual belongs in docs/ (see docs/development.md)"
    for link in re.findall(r"\]\((docs/[^)#]+)", "\n".join(lines)):
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_code_blocks_in_docs_are_includes_of_tested_files(page):
    for lang, body in _blocks(page):
        if lang not in ("python", "py", "toml"):
            continue
        lines = body.strip().splitlines()
        included = [INCLUDE.match(line) for line in lines]
        assert lines and all(included), f'{page.name}: a ```{lang} block must be an include (--8<-- "path"), got:\n{body}'
        for match in included:
            assert match
            target = match.group(1).split(":")[0]
            assert target.startswith(TESTED_ROOTS) and (ROOT / target).is_file(), f"{page.name} includes {target}"


def test_python_blocks_in_the_readme_are_tested_files_verbatim():
    blocks = [body for lang, body in _blocks(README) if lang in ("python", "py")]
    assert blocks, "the README shows the ten-line plugin"
    sources = {p: p.read_text(encoding="utf-8") for p in (DOCS / "examples").rglob("*.py")}
    for body in blocks:
        assert body in sources.values(), f"README python block is not a file under docs/examples/ verbatim:\n{body}"


def test_every_example_has_its_test():
    assert sorted(p.name for p in (DOCS / "examples").glob("*.py")) == sorted(EXAMPLES)
    assert all(name in globals() for name in EXAMPLES.values())


def test_the_ten_line_plugin_prunes_in_a_real_run(tmp_path):
    path = DOCS / "examples" / "ten_line_plugin.py"
    body = path.read_text(encoding="utf-8").split('"""', 2)[2]  # after the module docstring
    assert len([line for line in body.splitlines() if line.strip()]) <= 10, "the README promises ten lines"
    module = _load(path)
    check_pruner(module.LayerNormalisedMagnitude, {"scope": "global"})
    loaded = plugins.reset({"ten-line": module})
    try:
        assert loaded.infos["ten-line"].errors == []
        _, summary = short_run(tmp_path / "r", pruner="normalised-magnitude", epochs=1)
    finally:
        plugins.reset()
    assert summary["pruner"] == "normalised-magnitude" and summary["target_reached"]
    assert summary["ledger"]["pruner_state_bytes_per_prunable_weight"] == 1.0  # one bool mask byte, nothing else


def test_the_template_plugin_is_shown_whole():
    page = (DOCS / "plugins.md").read_text(encoding="utf-8")
    assert '--8<-- "plugins/prunekit-example/prunekit_example/__init__.py"' in page
    assert '--8<-- "plugins/prunekit-example/pyproject.toml"' in page


def test_every_hookspec_is_documented_with_its_signature():
    page = (DOCS / "plugins.md").read_text(encoding="utf-8")
    for name in HOOKS:
        signature = f"{name}({', '.join(inspect.signature(getattr(hookspecs, name)).parameters)})"
        assert f"`{signature}`" in page, f"docs/plugins.md does not document {signature}"


def _options_table() -> dict[str, str]:
    """Running's options table: each option (and short alias) named in a row's first cell -> that row's default."""
    text = (DOCS / "running.md").read_text(encoding="utf-8").split("## Options", 1)[1]
    rows = {}
    for line in text.split("\n## ", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| `-"):
            for option in re.findall(r"`(-[-a-z0-9]+)", cells[0]):
                rows[option] = cells[-1]
    return rows


def _shown(value: object) -> str:
    """How the table shows a literal default."""
    if value is False:
        return "off"
    if value in ({}, []):
        return "none"
    if isinstance(value, list):
        return f"`{', '.join(map(str, value))}`"
    return f"`{value}`"


def test_the_options_table_lists_every_run_option_with_runconfigs_default():
    table = _options_table()
    command = cli.commands["run"]
    options = [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]
    assert sorted(table) == sorted(o for p in options for o in p.opts), "docs/running.md's options table vs prunekit run"
    defaults = RunConfig()
    for param in options:
        field = next((f for f in (param.name, f"{param.name}s") if f in FIELD_NAMES), None)
        cell = table[param.opts[0]]
        value = getattr(defaults, field) if field else None
        if value is None:
            assert cell, f"{param.opts[0]}: say what the default is"
        else:
            assert cell == _shown(value), f"{param.opts[0]}: the table says {cell}, RunConfig.{field} is {value!r}"


def _command_lines(path: Path) -> list[list[str]]:
    """Every `prunekit ...` command in the shell blocks of a page, as argv (continuations joined, comments cut)."""
    commands = []
    for lang, body in _blocks(path):
        if lang not in SHELL:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0].endswith("prunekit") and "..." not in words:
                cut = next((i for i, w in enumerate(words) if w in (">", "|", "&&", "&", ";")), len(words))
                commands.append(words[1:cut])
    return commands


def _numbers_for_placeholders(command: click.Command, args: list[str]) -> list[str]:
    """`--sparsity S` -> `--sparsity 0`: a placeholder (capitals) stands for any number."""
    numeric = {
        o for p in command.params if isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType)) for o in p.opts
    }
    return ["0" if i and args[i - 1] in numeric and re.fullmatch(r"[A-Z][A-Z_0-9]*", a) else a for i, a in enumerate(args)]


@pytest.mark.parametrize("page", [README, *PAGES, *PLUGIN_READMES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_line_shown_parses(page):
    for argv in _command_lines(page):
        assert argv and argv[0] in cli.commands, f"{page.name}: prunekit {' '.join(argv)}: no such command"
        command = cli.commands[argv[0]]
        try:
            command.make_context(
                argv[0], _numbers_for_placeholders(command, argv[1:]), parent=click.Context(cli, info_name="prunekit")
            )
        except click.ClickException as exc:
            pytest.fail(f"{page.name}: prunekit {shlex.join(argv)}: {exc.format_message()}")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_yaml_blocks_are_settings_prunekit_takes(page):
    for lang, body in _blocks(page):
        if lang == "yaml":
            data = yaml.safe_load(body)
            assert isinstance(data, dict), f"{page.name}: a yaml block is a mapping"
            config_from_mapping(data.get("settings", data))  # raises UsageError on an unknown or ill-typed setting


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("page", [README, *PAGES, *PLUGIN_READMES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_dotted_prunekit_name_exists(page):
    names = sorted(set(re.findall(r"\bprunekit(?:\.[A-Za-z_]\w*)+", page.read_text(encoding="utf-8"))))
    missing = [name for name in names if name not in MLFLOW_TAGS and not _resolves(name)]
    assert not missing, f"{page.relative_to(ROOT)} names what the code does not have: {', '.join(missing)}"


def test_the_api_reference_shows_sphinx_roles_as_code():
    roles = _load(DOCS / "griffe_roles.py")
    text = "See :class:`~prunekit.api.Option`, :mod:`.runner` and :func:`prunekit.api.apply_mask_`."
    assert roles.markdown(text) == "See `Option`, `runner` and `prunekit.api.apply_mask_`."
