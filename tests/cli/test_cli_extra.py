"""``vortext`` on an install without the ``cli`` extra: one line naming the pip command."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Runs ``vortext_async.cli:main`` (the console script's target) with ``blocked``
# unimportable, as on an install without the extra.
_RUN_MAIN = """
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

for name in list(sys.modules):
    if name.partition(".")[0] in {blocked!r}:
        del sys.modules[name]
sys.meta_path.insert(0, Blocked())

from vortext_async.cli import main

sys.argv = ["vortext", "status"]
main()
"""


@pytest.mark.parametrize("blocked", [("typer",), ("rich",), ("typer", "rich", "click")])
def test_vortext_without_the_cli_extra_says_which_extra_and_exits_2(blocked: tuple[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RUN_MAIN.format(blocked=set(blocked))],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "", "VORTEXT_USERNAME": "", "VORTEXT_PASSWORD": ""},
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'vortext-async[cli]'" in lines[0]
    assert blocked[0] in lines[0]
    assert done.stdout == ""


def test_importing_the_cli_package_needs_no_extra() -> None:
    code = "import sys; sys.modules['typer'] = None; import vortext_async.cli; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
