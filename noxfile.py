"""Developer and CI tasks: `nox` runs the tests (each installed Python from 3.11 to
3.13, with httpx and with httpx2), lint, types, the documentation site and a tiny
benchmark smoke run."""

from __future__ import annotations

import glob
import os
import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "types", "docs", "bench_smoke"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHONS = ["3.11", "3.12", "3.13"]

# pyenv keeps extra interpreters out of PATH unless they are "global": put each
# installed one on PATH so nox finds python3.12 and python3.13 too.
for _python in PYTHONS:
    if shutil.which(f"python{_python}") is None or "pyenv/shims" in str(
        shutil.which(f"python{_python}")
    ):
        for _bin in sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{_python}.*/bin"))):
            os.environ["PATH"] = _bin + os.pathsep + os.environ["PATH"]


def _install(session: nox.Session, *extras: str, group: str = "test") -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install(spec, *nox.project.dependency_groups(PYPROJECT, group))


# Both libraries on the oldest Python; each newer Python with httpx2 (CI stays < 15 min).
# Each on the default path (the direct aiohttp transport), and one run on httpcore.
@nox.session
@nox.parametrize(
    ("python", "library", "transport"),
    [
        ("3.11", "httpx", "auto"),
        ("3.11", "httpx2", "auto"),
        ("3.12", "httpx2", "auto"),
        ("3.13", "httpx2", "auto"),
        ("3.11", "httpx", "httpx"),
    ],
)
def tests(session: nox.Session, library: str, transport: str) -> None:
    """The whole test suite on one Python with one HTTP library underneath, over the
    default path (``auto``) or over httpcore (``httpx``: ``VortextClient()`` takes
    ``transport="httpx"`` throughout)."""
    _install(session, *(["httpx2"] if library == "httpx2" else []))
    if library == "httpx":
        session.run("pip", "uninstall", "--yes", "--quiet", "httpx2", "httpcore2", silent=True)
    # Both cores: the suite waits on servers and subprocesses as much as it computes.
    env = {"VORTEXT_TEST_HTTP_LIBRARY": library, "VORTEXT_TEST_TRANSPORT": transport}
    session.run("pytest", "-n", "2", *session.posargs, env=env)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff (lint and formatting) and lint-imports (the layering of CONTRIBUTING.md)."""
    # lint-imports reads the installed package's import graph, extras included.
    _install(session, "httpx2", "redis", "cli", "fastapi", "fast", group="lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session(python="3.11")
def types(session: nox.Session) -> None:
    """mypy --strict on the package."""
    _install(session, "httpx2", "redis", "postgres", "cli", "fastapi", "fast", group="lint")
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("mypy", "--strict", "vortext_async")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The documentation site into site/: --strict fails on a broken link or reference."""
    _install(session, "httpx2", "redis", "cli", "fastapi", "fast", group="docs")
    # mkdocs-material prints a banner about MkDocs 2.0 on every build: we pin mkdocs<2.
    env = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", env=env)


@nox.session(python="3.11")
def bench_smoke(session: nox.Session) -> None:
    """Every benchmark on a tiny size: they run; their numbers mean nothing here."""
    _install(session, "httpx2", "redis", "postgres", "cli", "fast", group="bench")
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("python", "benchmarks/run.py", "--quick")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The benchmark suite at full size: prints tables of medians and ratios."""
    _install(session, "httpx2", "redis", "postgres", "cli", "fast", group="bench")
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("python", "benchmarks/run.py", *session.posargs)
