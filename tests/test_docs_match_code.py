"""The documentation says what the code does: pages that name code are checked against it.

- docs/api.md names every constant of ``vortext_async/_api.py`` that says what the API
  is, in the section of its kind: documented, seen in a public integration, or ASSUMED;
- docs/cli.md names every command, option and argument of the ``vortext`` app;
- the API reference (docs/reference/) renders every name of ``vortext_async.__all__``
  and of each public submodule's ``__all__``.

Each test reads the code itself (its source, the click app, ``__all__``), never a
hand-kept list, so a new option, constant or export without its line in the docs fails.
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import vortext_async
from vortext_async import _api

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _sections(page: Path) -> dict[str, str]:
    """The ``## `` sections of ``page``: heading text -> body (up to the next ``## ``)."""
    sections: dict[str, str] = {}
    heading = ""
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            sections[heading] = ""
        else:
            sections[heading] = sections.get(heading, "") + line + "\n"
    return sections


# -- docs/api.md against vortext_async/_api.py --------------------------------------------

KINDS = {
    "ASSUMED": "Assumed",
    "seen in a public integration": "Seen in a public integration",
    "documented": "Documented",
}
"""The marker a constant of ``_api`` carries -> the section of docs/api.md that names it."""


def _api_constants() -> dict[str, str]:
    """Each constant of ``_api`` that says something about the API -> its kind's section.

    The kind is the marker in its trailing comment or its docstring (``ASSUMED`` first:
    an assumption's docstring may say what the API does not document).  Constants with
    no marker (environment variable names, JSON's safe integer) are the library's own.
    """
    source = Path(_api.__file__).read_text(encoding="utf-8")
    comments = {
        token.start[0]: token.string
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    body = ast.parse(source).body
    kinds: dict[str, str] = {}
    for node, following in zip(body, [*body[1:], None], strict=True):
        if not isinstance(node, ast.Assign):
            continue
        (target,) = node.targets
        assert isinstance(target, ast.Name)
        marker = comments.get(node.end_lineno or node.lineno, "")
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            marker += " " + following.value.value
        for word, section in KINDS.items():
            if re.search(rf"\b{word}\b", marker):
                kinds[target.id] = section
                break
    return kinds


def test_the_api_module_marks_its_assumptions() -> None:
    kinds = _api_constants()
    assert kinds["SMS_DETAIL_PATH"] == "Assumed"
    assert kinds["SMS_PATH"] == "Seen in a public integration"
    assert kinds["INTERNET_BASE_URL"] == "Documented"
    assert "ENV_USERNAME" not in kinds
    assert list(kinds.values()).count("Assumed") >= 7


@pytest.mark.parametrize(("name", "section"), sorted(_api_constants().items()))
def test_api_page_names_each_constant_in_the_section_of_its_kind(name: str, section: str) -> None:
    sections = _sections(DOCS / "api.md")
    assert f"`{name}`" in sections[section], (
        f"docs/api.md: `{name}` is {section.lower()} in vortext_async/_api.py; "
        f'name it in the "## {section}" section'
    )


def test_api_page_names_no_constant_under_the_wrong_kind() -> None:
    kinds = _api_constants()
    for section in KINDS.values():
        named = re.findall(r"`([A-Z][A-Z0-9_]+)`", _sections(DOCS / "api.md")[section])
        for name in named:
            assert hasattr(_api, name), f"docs/api.md, {section}: no `{name}` in _api.py"
            assert kinds.get(name) == section, (
                f"docs/api.md names `{name}` under {section}, _api.py says {kinds.get(name)}"
            )


# -- docs/cli.md against the vortext app ----------------------------------------------------

SHARED = "Options of the commands that call the API"
"""The docs/cli.md section for the account options, said once for every command."""
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _cli() -> Any:
    """The click group typer builds (typer 0.2x vendors click: typed loosely)."""
    pytest.importorskip("typer")
    import typer.main

    from vortext_async.cli import app

    group = typer.main.get_command(app)
    assert sorted(group.commands)  # type: ignore[attr-defined]
    return group


def _command_sections() -> dict[str, str]:
    sections = _sections(DOCS / "cli.md")
    commands = {}
    for heading, body in sections.items():
        match = re.fullmatch(r"`vortext (\w+)`", heading)
        if match:
            commands[match[1]] = body
    return commands


def _names(param: Any) -> list[str]:
    """An option's flags (``--quiet``, ``-q``), or an argument's metavar (``FILE``)."""
    if param.param_type_name == "option":
        return [*param.opts, *param.secondary_opts]
    return [param.metavar or param.name.upper()]


def test_cli_page_has_one_section_per_command() -> None:
    assert sorted(_command_sections()) == sorted(_cli().commands)


def _cli_params() -> list[tuple[str, str]]:
    try:
        group = _cli()
    except pytest.skip.Exception:
        return []
    return [
        (command, name)
        for command, cmd in sorted(group.commands.items())
        for param in cmd.params
        for name in _names(param)
    ]


@pytest.mark.parametrize(("command", "name"), _cli_params())
def test_cli_page_names_every_option_and_argument(command: str, name: str) -> None:
    section = _command_sections().get(command, "")
    shared = _sections(DOCS / "cli.md")[SHARED]
    pattern = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
    assert pattern.search(section) or (name.startswith("-") and pattern.search(shared)), (
        f"docs/cli.md: `vortext {command}` takes {name}; say what it does"
    )


def test_cli_page_names_no_option_a_command_lacks() -> None:
    group = _cli()
    every = {opt for cmd in group.commands.values() for p in cmd.params for opt in _names(p)}
    for command, section in _command_sections().items():
        own = {opt for p in group.commands[command].params for opt in _names(p)}
        for option in OPTION.findall(section):
            assert option in own | {"--help"}, f"docs/cli.md: `vortext {command}` has no {option}"
    for option in OPTION.findall(_sections(DOCS / "cli.md")[SHARED]):
        assert option in every | {"--help"}, f"docs/cli.md: no command has {option}"
    root = {opt for p in group.params for opt in _names(p)}
    assert root <= set(OPTION.findall((DOCS / "cli.md").read_text(encoding="utf-8")))


# -- docs/reference/ against __all__ ----------------------------------------------------------

PUBLIC_MODULES = [
    "vortext_async",
    *(f"vortext_async.{m}" for m in ("emulator", "fastapi", "sync", "testing", "webhooks")),
]
"""Every public module whose names the reference renders.  ``vortext_async.cli`` exports
the ``vortext`` command (``app``, ``main``): docs/cli.md documents it, checked above."""


def _rendered() -> set[str]:
    """The objects the reference pages render: ``::: dotted.path`` lines."""
    return {
        match[1]
        for page in (DOCS / "reference").glob("*.md")
        for match in re.finditer(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M)
    }


def _exported() -> list[tuple[str, str]]:
    return [
        (module, name)
        for module in PUBLIC_MODULES
        for name in importlib.import_module(module).__all__
    ]


@pytest.mark.parametrize(("module", "name"), _exported())
def test_reference_renders_every_exported_name(module: str, name: str) -> None:
    rendered = _rendered()
    value = getattr(importlib.import_module(module), name)
    # A submodule's re-export of a top-level name is rendered once, at the top level.
    reexport = module != "vortext_async" and getattr(vortext_async, name, None) is value
    assert f"{module}.{name}" in rendered or (reexport and f"vortext_async.{name}" in rendered), (
        f"docs/reference/: add `::: {module}.{name}`"
    )


def test_reference_renders_only_exported_names() -> None:
    for path in _rendered():
        module_name, _, name = path.rpartition(".")
        try:
            module: ModuleType | None = importlib.import_module(path)
        except ImportError:
            module = None
        if module is not None:
            continue  # a module's own docstring, as an introduction
        assert module_name in PUBLIC_MODULES, f"docs/reference/ renders {path}: not public"
        assert name in importlib.import_module(module_name).__all__, (
            f"docs/reference/ renders {path}, which {module_name}.__all__ does not export"
        )


# -- README links, which must work on GitHub and on the package index -----------------------


def _project_urls() -> dict[str, str]:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as file:
        urls: dict[str, str] = tomllib.load(file)["project"]["urls"]
    return urls


def test_readme_links_are_absolute_and_reach_a_page_or_file() -> None:
    urls = _project_urls()
    site, source = urls["Documentation"].rstrip("/") + "/", urls["Source"].rstrip("/") + "/"
    links = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(links) >= 10
    for link in links:
        assert re.match(r"https?://", link), f"README: {link} breaks on a package index"
        if link.startswith(site):
            page = link.removeprefix(site).split("#")[0].strip("/")
            candidates = [DOCS / f"{page}.md", DOCS / page / "index.md"] if page else []
            assert not page or any(p.is_file() for p in candidates), f"README: no page {link}"
        elif link.startswith(source):
            path = re.sub(r"^(blob|tree)/main/", "", link.removeprefix(source).split("#")[0])
            assert path == "issues" or (ROOT / path).exists(), f"README: no file {link}"
