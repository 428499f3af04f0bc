"""What the package exports is what it says it exports (after httpx's test of the same name)."""

from __future__ import annotations

import importlib
import types

import pytest

import vortext_async
from vortext_async import _errors

PUBLIC_SUBMODULES = ["cli", "emulator", "fastapi", "sync", "testing", "webhooks"]


def test_all_is_every_public_name_of_the_package() -> None:
    public = {
        name
        for name, value in vars(vortext_async).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert len(vortext_async.__all__) == len(set(vortext_async.__all__))
    assert set(vortext_async.__all__) == public | {"__version__"}


def test_every_name_in_all_is_importable() -> None:
    for name in vortext_async.__all__:
        assert getattr(vortext_async, name) is not None, name


def test_every_error_class_lives_in_the_errors_module_and_is_exported() -> None:
    defined = {
        name
        for name, value in vars(_errors).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == _errors.__name__
    }
    assert set(_errors.__all__) == defined
    assert defined <= set(vortext_async.__all__)
    for name in defined:
        assert getattr(vortext_async, name) is getattr(_errors, name)


def test_no_error_class_is_defined_outside_the_errors_module() -> None:
    for name in ["vortext_async", *(f"vortext_async.{sub}" for sub in PUBLIC_SUBMODULES)]:
        module = importlib.import_module(name)
        for member in getattr(module, "__all__", []):
            value = getattr(module, member)
            if isinstance(value, type) and issubclass(value, BaseException):
                assert value.__module__ == _errors.__name__, f"{name}.{member}"


@pytest.mark.parametrize("name", PUBLIC_SUBMODULES)
def test_each_public_submodule_all_is_importable(name: str) -> None:
    module = importlib.import_module(f"vortext_async.{name}")
    assert module.__all__, name
    for member in module.__all__:
        assert hasattr(module, member), f"vortext_async.{name}.{member}"
