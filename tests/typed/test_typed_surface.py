"""The public signatures are typed: ``mypy --strict`` refuses wrong calls and accepts right ones.

``wrong_calls.py`` marks each line mypy must refuse with ``# E: <error code>``;
``right_calls.py`` holds everyday calls that must type-check clean.  Both are only
type-checked, never run.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vortext_async
from vortext_async import ClientOptions, VortextClient
from vortext_async.sync import VortextClient as SyncClient

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
WRONG = HERE / "wrong_calls.py"
RIGHT = HERE / "right_calls.py"
HAS_HTTPX2 = importlib.util.find_spec("httpx2") is not None

_MARK = re.compile(r"#\s*E(\[httpx2\])?:\s*([a-z-]+)\s*$")
_ERROR = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+): error: (?P<text>.*?)\s+\[(?P<code>[a-z-]+)\]$"
)


def expected_errors() -> dict[int, str]:
    """Line number -> the error code mypy must report there."""
    expected = {}
    for number, line in enumerate(WRONG.read_text().splitlines(), start=1):
        mark = _MARK.search(line)
        if mark and (HAS_HTTPX2 or not mark.group(1)):
            expected[number] = mark.group(2)
    return expected


def needs_httpx2_lines() -> set[int]:
    lines = WRONG.read_text().splitlines()
    return {n for n, line in enumerate(lines, start=1) if "# E[httpx2]" in line}


@pytest.fixture(scope="module")
def mypy_errors(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[int, list[str]]]:
    """mypy --strict over both files: file name -> line -> error codes."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (it is in the lint and test dependency groups)")
    # pytest's cache keeps mypy's between runs; under ``-p no:cacheprovider`` there is
    # none (no ``config.cache`` at all): a fresh directory then, slower but the same.
    cache = getattr(request.config, "cache", None)
    cache_dir = cache.mkdir("mypy") if cache is not None else tmp_path_factory.mktemp("mypy")
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--follow-imports=silent",  # errors of these two files only
        "--no-error-summary",
        "--show-error-codes",
        "--no-pretty",
        "--no-color-output",
        "--cache-dir",
        str(cache_dir),
        str(WRONG),
        str(RIGHT),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    found: dict[str, dict[int, list[str]]] = {WRONG.name: {}, RIGHT.name: {}}
    for line in done.stdout.splitlines():
        error = _ERROR.match(line)
        if error is None:
            continue
        name = Path(error["path"]).name
        assert name in found, line
        found[name].setdefault(int(error["line"]), []).append(error["code"])
    return found


def test_mypy_refuses_each_wrong_call_at_its_line(
    mypy_errors: dict[str, dict[int, list[str]]],
) -> None:
    found = mypy_errors[WRONG.name]
    expected = expected_errors()
    missing = {line: code for line, code in expected.items() if code not in found.get(line, [])}
    unexpected = {
        line: codes
        for line, codes in found.items()
        if line not in expected and (HAS_HTTPX2 or line not in needs_httpx2_lines())
    }
    assert missing == {}, f"wrong calls mypy accepted (line: expected code): {missing}"
    assert unexpected == {}, f"errors on lines not marked: {unexpected}"
    assert len(expected) >= 20


def test_mypy_accepts_the_everyday_calls(mypy_errors: dict[str, dict[int, list[str]]]) -> None:
    assert mypy_errors[RIGHT.name] == {}


# -- no Any, and the copies stay copies -------------------------------------------------


PUBLIC_CALLABLES = [
    VortextClient.__init__,
    VortextClient.send_bulk,
    VortextClient.send_sms,
    SyncClient.__init__,
    vortext_async.send_bulk,
    vortext_async.aiohttp_transport,
]


@pytest.mark.parametrize("function", PUBLIC_CALLABLES, ids=lambda f: f.__qualname__)
def test_no_parameter_is_typed_any(function: object) -> None:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    for name, parameter in signature.parameters.items():
        annotation = str(parameter.annotation)
        assert not re.search(r"\bAny\b", annotation), f"{name}: {annotation}"
        assert parameter.kind is not inspect.Parameter.VAR_KEYWORD, name
    assert not re.search(r"\bAny\b", str(signature.return_annotation))


def test_the_blocking_client_takes_the_asyncio_clients_arguments() -> None:
    asyncio_parameters = inspect.signature(VortextClient).parameters
    blocking_parameters = inspect.signature(SyncClient).parameters
    assert list(blocking_parameters) == list(asyncio_parameters)
    for name, parameter in asyncio_parameters.items():
        other = blocking_parameters[name]
        assert (other.kind, other.default) == (parameter.kind, parameter.default), name
        assert str(other.annotation) == str(parameter.annotation), name


def test_client_options_name_every_argument_of_the_client() -> None:
    """``vortext_lifespan(**options)`` and ``emulator_client(**options)`` follow the client."""
    parameters = inspect.signature(VortextClient).parameters
    assert set(ClientOptions.__annotations__) == set(parameters)
    for name, parameter in parameters.items():
        option = ClientOptions.__annotations__[name]
        assert getattr(option, "__forward_arg__", option) == parameter.annotation, name


def test_the_blocking_send_bulk_takes_the_asyncio_send_bulks_arguments() -> None:
    asyncio_bulk = inspect.signature(VortextClient.send_bulk).parameters
    assert list(inspect.signature(SyncClient.send_bulk).parameters) == list(asyncio_bulk)
    assert list(asyncio_bulk)[1:] == list(inspect.signature(vortext_async.send_bulk).parameters)[1:]
    function_bulk = inspect.signature(vortext_async.send_bulk).parameters
    for name in list(asyncio_bulk)[2:]:  # the options: same defaults, same types
        assert asyncio_bulk[name].default == function_bulk[name].default, name
        assert asyncio_bulk[name].annotation == function_bulk[name].annotation, name
