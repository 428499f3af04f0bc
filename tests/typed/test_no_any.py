"""No ``Any`` in a public signature: every parameter and return type of the public surface.

Walks each name of ``vortext_async.__all__`` and of the public submodules: functions,
and the public methods, properties and constructors of classes (with what they
inherit from the package).  Annotations are strings here (``from __future__ import
annotations``), some naming what is imported only for type checkers: each is
evaluated in its module, a name it cannot find stands for itself (it is not
``Any``), and aliases, ``TypedDict`` options and recursive aliases are followed.
"""

from __future__ import annotations

import builtins
import collections.abc
import importlib
import inspect
import typing
from collections.abc import Callable, Iterator

import pytest

SURFACE = [
    "vortext_async",
    "vortext_async.sync",
    "vortext_async.webhooks",
    "vortext_async.emulator",
    "vortext_async.testing",
    "vortext_async.fastapi",
]


class _Unknown:
    """A name only a type checker imports: stands for a type, and is not ``Any``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, name: str) -> _Unknown:
        return _Unknown(f"{self.name}.{name}")

    def __getitem__(self, item: object) -> _Unknown:
        return self

    def __or__(self, other: object) -> _Unknown:
        return self

    __ror__ = __or__

    def __repr__(self) -> str:
        return self.name


class _Namespace(dict[str, object]):
    def __missing__(self, name: str) -> object:
        return getattr(builtins, name, None) or _Unknown(name)


def _evaluate(annotation: object, namespace: dict[str, object]) -> object:
    if isinstance(annotation, str):
        return eval(annotation, {}, _Namespace(namespace))
    if isinstance(annotation, typing.ForwardRef):
        return _evaluate(annotation.__forward_arg__, namespace)
    return annotation


def _mentions_any(annotation: object, namespace: dict[str, object], seen: set[str]) -> bool:
    """Whether ``annotation`` is or holds ``Any`` (aliases and forward refs followed)."""
    kind = _evaluate(annotation, namespace)
    if kind is typing.Any:
        return True
    if isinstance(annotation, (str, typing.ForwardRef)):
        text = annotation if isinstance(annotation, str) else annotation.__forward_arg__
        if text in seen:  # a recursive alias, already being looked at
            return False
        seen = seen | {text}
    if isinstance(kind, typing.TypeVar):
        parts: tuple[object, ...] = (kind.__bound__, *kind.__constraints__)
        return any(_mentions_any(p, namespace, seen) for p in parts if p is not None)
    if typing.is_typeddict(kind):
        module = vars(importlib.import_module(kind.__module__))
        return any(_mentions_any(t, module, seen) for t in kind.__annotations__.values())
    if typing.get_origin(kind) is typing.Literal:
        return False
    return any(
        _mentions_any(arg, namespace, seen)
        for arg in typing.get_args(kind)
        if not isinstance(arg, (list, type(...)))
    ) or any(
        _mentions_any(arg, namespace, seen)
        for group in typing.get_args(kind)
        if isinstance(group, list)
        for arg in group
    )


def _functions_of(cls: type) -> Iterator[tuple[str, Callable[..., object]]]:
    done: set[str] = set()
    for owner in cls.__mro__:
        if not owner.__module__.startswith("vortext_async"):
            continue
        for name, member in vars(owner).items():
            if name in done or (name.startswith("_") and not name.startswith("__")):
                continue
            if name in ("__init_subclass__", "__class_getitem__"):
                continue
            done.add(name)
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                member = member.fget
            if inspect.isfunction(member):
                yield f"{cls.__qualname__}.{name}", member


def _public_callables() -> Iterator[tuple[str, Callable[..., object]]]:
    for module_name in SURFACE:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value):
                for qualname, function in _functions_of(value):
                    yield f"{module_name}.{qualname}", function
            elif inspect.isfunction(value):
                yield f"{module_name}.{name}", value


PUBLIC = dict(_public_callables())


def test_the_walk_finds_the_public_surface() -> None:
    assert len(PUBLIC) > 150
    for expected in [
        "vortext_async.VortextClient.__init__",
        "vortext_async.Sms.__init__",
        "vortext_async.HTTPStatusError.json",
        "vortext_async.sync.BulkJob.__init__",
        "vortext_async.emulator.Emulator.received_count",
        "vortext_async.emulator.ReceivedSms.__init__",
        "vortext_async.fastapi.vortext_lifespan",
        "vortext_async.webhooks.PushReceiver.__call__",
    ]:
        assert expected in PUBLIC, expected


def test_the_check_sees_any_however_it_is_spelled() -> None:
    namespace = {"typing": typing, "Mapping": collections.abc.Mapping, "Alias": "int | Any"}
    namespace["Any"] = typing.Any
    for annotation in ["Any", "typing.Any", "Mapping[str, Any] | None", "list[Alias]"]:
        assert _mentions_any(annotation, namespace, set()), annotation
    for annotation in ["Mapping[str, object]", "NotImported[int] | None", "'Tree'"]:
        assert not _mentions_any(annotation, {**namespace, "Tree": "list[Tree]"}, set())


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_no_public_signature_mentions_any(name: str) -> None:
    function = inspect.unwrap(PUBLIC[name])
    namespace = dict(vars(importlib.import_module(function.__module__)))
    for parameter, annotation in function.__annotations__.items():
        assert not _mentions_any(annotation, namespace, set()), f"{name}: {parameter}"
