"""``import vortext_async.fastapi`` without the extra names the pip line to run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Loaded by ``site`` at start-up from PYTHONPATH: fastapi (and what only it brings)
# becomes unimportable, as on an install without the extra.
_SITECUSTOMIZE = """
import sys

BLOCKED = {blocked!r}


class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Blocked())
"""

_IMPORT = textwrap.dedent(
    """
    try:
        import vortext_async.fastapi
    except ImportError as error:
        print(type(error).__name__, error.name)
        print(error)
    """
)


def _run(code: str, blocked: set[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(blocked=blocked))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.mark.parametrize("blocked", [{"fastapi"}, {"fastapi", "starlette"}])
def test_importing_the_fastapi_module_without_the_extra_names_the_pip_line(
    blocked: set[str], tmp_path: Path
) -> None:
    done = _run(_IMPORT, blocked, tmp_path)
    assert done.returncode == 0, done.stderr
    kind, message = done.stdout.splitlines()
    assert kind == "ModuleNotFoundError fastapi"  # still an ImportError, naming the module
    assert "pip install 'vortext-async[fastapi]'" in message
    assert "fastapi is not installed" in message


def test_the_blocker_blocks_and_the_rest_of_the_package_imports(tmp_path: Path) -> None:
    code = _IMPORT + "import vortext_async, vortext_async.webhooks\nprint('ok')\n"
    done = _run("import fastapi", {"fastapi"}, tmp_path)
    assert "No module named 'fastapi'" in done.stderr
    done = _run(code, {"fastapi"}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ok"


def test_an_import_error_the_extra_would_not_fix_is_left_as_it_is(tmp_path: Path) -> None:
    done = _run(_IMPORT, {"anyio"}, tmp_path)  # starlette needs anyio: not ours to name
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "ModuleNotFoundError anyio"
    assert "pip install" not in done.stdout
