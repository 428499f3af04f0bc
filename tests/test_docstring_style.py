"""One docstring style (CONTRIBUTING.md): no ``#:`` comments, no bullet lists of fields.

Fields, module constants and instance attributes are documented by an attribute
docstring; constructor parameters under ``Args:``.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import vortext_async

PACKAGE = Path(vortext_async.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))

# A bullet that documents a parameter: "- ``users``: ..." or "- ``name`` (int): ...".
_FIELD_BULLET = re.compile(r"^\s*[-*]\s+``(?P<name>\w+)``\s*[:(]")


def test_the_package_sources_are_found() -> None:
    assert len(SOURCES) > 40


def test_no_sphinx_attribute_comment_is_left() -> None:
    found = []
    for path in SOURCES:
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
        for token in tokens:
            if token.type == tokenize.COMMENT and token.string.startswith("#:"):
                found.append(f"{path.relative_to(PACKAGE)}:{token.start[0]}")
    assert found == [], "use an attribute docstring under the name instead of '#:'"


def _parameters(node: ast.ClassDef) -> set[str]:
    names: set[str] = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            arguments = item.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            names |= {argument.arg for argument in every} - {"self"}
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)  # an attrs field
    return names


def test_no_class_docstring_lists_its_fields_as_bullets() -> None:
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            parameters = _parameters(node)
            for line in (ast.get_docstring(node) or "").splitlines():
                bullet = _FIELD_BULLET.match(line)
                if bullet and bullet["name"] in parameters:
                    found.append(f"{path.relative_to(PACKAGE)}: {node.name}: {line.strip()}")
    assert found == [], "document constructor parameters under 'Args:'"
