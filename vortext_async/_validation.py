"""Checks of a message before anything is sent.

The server is the judge of phone numbers (the API's own example is longer than a
valid French number), so the default check is only of shape: a ``+``, ASCII digits
and a sane length.  ``strict=True`` asks for E.164 (at most 15 digits, no leading zero).

Everything else is checked so that what goes out is what the caller meant, and so
that nothing the caller passed can break the client instead of being refused: a text
longer than :data:`~vortext_async._api.MAX_MESSAGE_LENGTH`, text that is not valid
Unicode (a lone surrogate), metadata nested too deep, too large, or holding numbers
JSON cannot carry exactly.  Each is an :class:`InvalidRequestError` naming the field,
down to the metadata entry (``metadata.order.lines[2]``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from . import _api
from ._errors import InvalidRequestError
from ._models import Sms

__all__ = ["check_sms"]

# [0-9], not \d: \d also matches Arabic-Indic, fullwidth and every other Unicode digit.
_LOOSE_NUMBER = re.compile(r"\+[0-9]{3,20}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_UNICODE = "is not valid Unicode: it holds a lone surrogate ({}), which UTF-8 cannot carry"


def check_sms(
    sms: Sms,
    *,
    strict_numbers: bool = False,
    max_message_length: int = _api.MAX_MESSAGE_LENGTH,
) -> None:
    """Raise :class:`InvalidRequestError` naming the first bad field of ``sms``.

    Args:
        sms: the message to check.
        strict_numbers: ask for E.164 phone numbers instead of a loose shape.
        max_message_length: the longest text accepted, in characters.
    """
    number = sms.phone_number
    if not isinstance(number, str):
        raise InvalidRequestError("phone_number", number, "must be a string such as '+33611272727'")
    if strict_numbers:
        if not _E164.fullmatch(number):
            raise InvalidRequestError(
                "phone_number",
                number,
                "is not E.164 ('+', 7 to 15 ASCII digits 0-9, no leading 0)",
            )
    elif not _LOOSE_NUMBER.fullmatch(number):
        raise InvalidRequestError(
            "phone_number",
            number,
            "must be '+' followed by 3 to 20 ASCII digits 0-9, with no spaces",
        )
    message = sms.message
    if not isinstance(message, str):
        raise InvalidRequestError("message", message, "must be a string")
    if len(message) > max_message_length:
        raise InvalidRequestError(
            "message",
            message,
            f"is {len(message):,} characters long, over the limit of {max_message_length:,} "
            "(VortextClient(max_message_length=...))",
        )
    if not message.strip():
        raise InvalidRequestError("message", message, "is empty")
    if not message.isascii() and (found := _SURROGATE.search(message)):
        raise InvalidRequestError("message", message, _NOT_UNICODE.format(_at(found)))
    if sms.metadata is not None:
        _check_metadata(sms.metadata)


def _at(found: re.Match[str]) -> str:
    return f"{found.group()!r} at index {found.start()}"


_Path = tuple["_Path", "str | int"] | None
"""Where an entry sits: ``(parent, key or index)``, ``None`` for ``metadata`` itself.
Made into text only for an error, so a good send builds no strings."""


def _path(node: _Path) -> str:
    parts: list[str] = []
    while node is not None:
        node, key = node
        if isinstance(key, int):
            parts.append(f"[{key}]")
        else:
            parts.append(f".{key}" if _NAME.fullmatch(key) else f"[{key!r}]")
    return "metadata" + "".join(reversed(parts))


def _check_metadata(metadata: Any) -> None:
    """Walk ``metadata`` without recursion, stopping at the first bad entry.

    The walk never goes deeper than :data:`~vortext_async._api.MAX_METADATA_DEPTH`, and
    stops once a lower bound of the encoded size passes
    :data:`~vortext_async._api.MAX_METADATA_SIZE` (the exact size is checked when the
    body is encoded), so its work is bounded whatever it is given.
    """
    if not isinstance(metadata, Mapping):
        raise InvalidRequestError("metadata", metadata, "must be a JSON object (a dict)")
    max_depth = _api.MAX_METADATA_DEPTH
    max_size = _api.MAX_METADATA_SIZE
    if type(metadata) is dict and len(metadata) < 64 and _flat_ascii(metadata, max_size):
        return  # the usual case, a few ASCII strings: nothing else to look at
    size = 0  # a lower bound of the encoded size: one byte per character at least
    pending: list[tuple[Any, _Path, int]] = [(metadata, None, 1)]
    while pending:
        value, where, depth = pending.pop()
        if isinstance(value, str):
            size += len(value) + 2
            if not value.isascii() and (found := _SURROGATE.search(value)):
                raise InvalidRequestError(_path(where), value, _NOT_UNICODE.format(_at(found)))
        elif value is None or isinstance(value, bool):
            size += 4
        elif isinstance(value, int):
            size += 1
            if not -_api.MAX_SAFE_INTEGER <= value <= _api.MAX_SAFE_INTEGER:
                raise InvalidRequestError(
                    _path(where),
                    value,
                    "is an integer beyond +/-(2**53 - 1), which JSON readers cannot hold "
                    "exactly; send it as a string",
                )
        elif isinstance(value, float):
            size += 1
            if not math.isfinite(value):
                raise InvalidRequestError(
                    _path(where), value, "is not a finite number; JSON has none"
                )
        elif isinstance(value, Mapping | list | tuple):
            if depth > max_depth:
                raise InvalidRequestError(
                    "metadata",
                    metadata,
                    f"nests deeper than {max_depth} levels of objects and arrays "
                    f"(at {_path(where)})",
                )
            size += 1 + len(value)  # brackets and commas
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise InvalidRequestError(
                            _path(where), value, f"key {key!r} is not a string"
                        )
                    if not key.isascii() and (found := _SURROGATE.search(key)):
                        raise InvalidRequestError(
                            _path(where), key, "has a key that " + _NOT_UNICODE.format(_at(found))
                        )
                    size += len(key) + 3  # quotes and colon
                    if size > max_size:
                        raise _too_large(metadata, max_size)
                    pending.append((item, (where, key), depth + 1))
            else:
                if size + len(value) > max_size:  # each item takes a byte at least
                    raise _too_large(metadata, max_size)
                pending.extend(
                    (item, (where, index), depth + 1) for index, item in enumerate(value)
                )
        else:
            raise InvalidRequestError(
                _path(where), value, f"is a {type(value).__name__}, which JSON cannot carry"
            )
        if size > max_size:
            raise _too_large(metadata, max_size)


def _flat_ascii(metadata: dict[Any, Any], max_size: int) -> bool:
    """True when ``metadata`` holds ASCII strings only, within the size limit as far as a
    lower bound tells (the exact size is checked when the body is encoded)."""
    size = 1 + 6 * len(metadata)  # braces; per entry quotes, colon and comma
    for key, value in metadata.items():
        if type(key) is not str or type(value) is not str:
            return False
        if not key.isascii() or not value.isascii():
            return False
        size += len(key) + len(value)
    return size <= max_size


def _too_large(metadata: Any, max_size: int) -> InvalidRequestError:
    return InvalidRequestError(
        "metadata", metadata, f"is over the limit of {max_size:,} bytes as JSON"
    )
