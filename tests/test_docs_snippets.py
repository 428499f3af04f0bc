"""Every Python block of the README and of docs/ runs as written.

Each ```python block is saved as a script and run with this interpreter, in a fresh
directory, against an emulator served on loopback: ``VORTEXT_BASE_URL``,
``VORTEXT_USERNAME`` and ``VORTEXT_PASSWORD`` point at it, as the docs tell readers to
set them.  A block defining ``test_`` functions is run by pytest instead, in strict
and in auto mode of pytest-asyncio.  A block that must not run says so on the line
before it: ``<!-- not run: the reason -->``.  Every fence names its language, so a
shell or output block is never mistaken for Python.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.support.served import served_emulator
from vortext_async.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<info>[^`]*)$")

# Files the docs' examples read, as a reader would have them.
FILES = {"campaign-42.csv": "id,phone,text\nc1,+33611272727,Hello\nc2,+33611272728,Hi\n"}


@attrs.frozen
class Block:
    page: Path
    line: int
    language: str
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> Iterator[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    n = 0
    while n < len(lines):
        opening = FENCE.match(lines[n])
        if opening is None:
            n += 1
            continue
        indent, info = opening["indent"], opening["info"].strip()
        start = n
        n += 1
        body = []
        while n < len(lines) and lines[n].strip() != "```":
            body.append(lines[n][len(indent) :])
            n += 1
        n += 1
        previous = next((line for line in reversed(lines[:start]) if line.strip()), "")
        marker = NOT_RUN.search(previous)
        yield Block(
            page=page,
            line=start + 1,
            language=info.split()[0] if info else "",
            code="\n".join(body) + "\n",
            not_run=marker["reason"] if marker else None,
        )


ALL = [block for page in PAGES for block in blocks(page)]
PYTHON = [block for block in ALL if block.language == "python"]


def test_the_pages_have_python_blocks():
    assert len(PYTHON) >= 20
    assert any(block.page.name == "README.md" for block in PYTHON)


@pytest.mark.parametrize("block", ALL, ids=[block.id for block in ALL])
def test_every_fence_names_its_language(block: Block):
    assert block.language, "a bare ``` fence: say python, sh, text..."


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    with served_emulator(Emulator(users={"demo": "demo"})) as url:
        yield url


def _environment(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VORTEXT_", "PYTEST_"))}
    env.update(
        VORTEXT_BASE_URL=url,
        VORTEXT_USERNAME="demo",
        VORTEXT_PASSWORD="demo",
        VORTEXT_PUSH_TOKEN="docs-test-token-0123456789",
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.mark.parametrize("block", PYTHON, ids=[block.id for block in PYTHON])
def test_python_block_runs(block: Block, emulator_url: str, tmp_path: Path):
    if block.not_run is not None:
        pytest.skip(f"marked not run: {block.not_run}")
    for name, content in FILES.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    env = _environment(emulator_url)
    if re.search(r"^(async )?def test_", block.code, re.MULTILINE):
        (tmp_path / "test_snippet.py").write_text(block.code, encoding="utf-8")
        for mode in ("strict", "auto"):
            (tmp_path / "pytest.ini").write_text(f"[pytest]\nasyncio_mode = {mode}\n")
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_snippet.py"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, f"{mode} mode:\n{done.stdout}\n{done.stderr}"
            assert " passed" in done.stdout
        return
    script = tmp_path / "snippet.py"
    script.write_text(block.code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
