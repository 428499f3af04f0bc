"""The wire format: one cattrs converter between JSON and the records.

- camelCase on the wire, snake_case in Python (``message_id`` <-> ``messageId``);
- dates as the API writes them, ``2016-06-01T12:27:19.000+0200``, and read also
  with ``Z`` or ``+02:00``; always timezone-aware in Python;
- unknown fields kept in each record's ``extra``; a missing or mistyped field we need
  is an :class:`InvalidResponseError` naming the field and quoting the body.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import format_exception

from ._errors import InvalidRequestError, InvalidResponseError
from ._models import JSONObject, PushReply, PushResponse, SentSms, ServiceStatus, Sms, SmsDetail

__all__ = [
    "converter",
    "decode",
    "describe_error",
    "encode_sms",
    "format_date",
    "parse_date",
    "structure",
    "to_camel",
]

T = TypeVar("T")

# Extended ISO 8601 with a mandatory offset: the API's form and its common variants.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2})\Z")


def parse_date(value: str) -> _dt.datetime:
    """Read a wire date (``...+0200``, ``...Z`` or ``...+02:00``) as an aware datetime."""
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError(f"{value!r} is not a date of the form 2016-06-01T12:27:19.000+0200")
    return _dt.datetime.fromisoformat(value)


def format_date(value: _dt.datetime) -> str:
    """Write an aware datetime exactly as the API does: ``2016-06-01T12:27:19.000+0200``."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(
            f"{value!r} is a naive datetime; give it a timezone (for example datetime.UTC)"
        )
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond // 1000:03d}"
        f"{sign}{hours:02d}{minutes:02d}"
    )


def to_camel(name: str) -> str:
    """``message_id`` -> ``messageId``."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


converter = cattrs.Converter()


def _structure_str(value: Any, _: Any) -> str:
    # cattrs would turn 3 into "3"; a number where the API promises text is a bad answer.
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__} {value!r}")
    return value


def _structure_object(value: Any, _: Any) -> JSONObject:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise TypeError(f"expected a JSON object, got {type(value).__name__} {value!r}")
    return dict(value)


converter.register_structure_hook(str, _structure_str)


def _is_json_object(type_: object) -> bool:
    # ``JSONObject`` as the record's annotation resolves to: its recursive value
    # type comes back unfolded one level, so it is recognised by shape.
    if type_ == JSONObject:
        return True
    if typing.get_origin(type_) is not Mapping or typing.get_args(type_)[:1] != (str,):
        return False
    values = typing.get_args(typing.get_args(type_)[1])
    return {str, int, float, bool, type(None)} <= set(values)


converter.register_structure_hook_func(_is_json_object, _structure_object)
converter.register_structure_hook(_dt.datetime, lambda value, _: parse_date(value))
converter.register_unstructure_hook(_dt.datetime, format_date)


# cattrs types **overrides as its keyword flags; the overrides are right, say so once.
_make_structure: Any = make_dict_structure_fn
_make_unstructure: Any = make_dict_unstructure_fn


def _register(cls: type[Any], **hooks: Callable[[Any, Any], Any]) -> None:
    """Give ``cls`` camelCase names and an ``extra`` mapping for unknown fields.

    ``hooks`` structure the named fields their own way (field name: cattrs hook).
    """
    names = [f.name for f in attrs.fields(cls) if f.name != "extra"]
    renames = {name: override(rename=to_camel(name), struct_hook=hooks.get(name)) for name in names}
    known = frozenset(to_camel(name) for name in names)
    structure_known = _make_structure(cls, converter, extra=override(omit=True), **renames)
    unstructure_known = _make_unstructure(cls, converter, extra=override(omit=True), **renames)

    def structure_hook(data: Any, _: Any) -> Any:
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        record = structure_known(data, cls)
        extra = {key: value for key, value in data.items() if key not in known}
        if extra:
            object.__setattr__(record, "extra", extra)
        return record

    def unstructure_hook(record: Any) -> dict[str, Any]:
        data: dict[str, Any] = dict(record.extra)
        data.update(unstructure_known(record))
        return data

    converter.register_structure_hook(cls, structure_hook)
    converter.register_unstructure_hook(cls, unstructure_hook)


def _structure_push_message(value: Any, _: Any) -> SmsDetail:
    # The API documents ``"message": { }``; null or absent says as little.
    if value is None:
        return SmsDetail()
    detail: SmsDetail = converter.structure(value, SmsDetail)
    return detail


for _cls in (SentSms, SmsDetail, ServiceStatus, PushReply):
    _register(_cls)
_register(PushResponse, message=_structure_push_message)


def _format_exception(error: BaseException, type_: Any) -> str:
    if isinstance(error, KeyError):
        return "required field missing"
    if isinstance(error, (TypeError, ValueError)) and str(error):
        return str(error)
    return format_exception(error, type_)


_PATH = re.compile(r"@ (\$\S*)")


def describe_error(error: BaseException) -> str:
    if not isinstance(error, cattrs.BaseValidationError):
        return str(error)
    # cattrs names Python attributes in its paths; speak of the wire's names instead.
    messages = cattrs.transform_error(error, path="$", format_exception=_format_exception)
    return "; ".join(_PATH.sub(lambda m: "@ " + to_camel(m.group(1)), text) for text in messages)


def decode(body: bytes | str, what: str) -> Any:
    """Parse a JSON body, or raise :class:`InvalidResponseError` saying it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise InvalidResponseError(f"{what} is not JSON ({error})", body=body) from None


def structure(data: Any, cls: type[T], *, body: bytes | str, what: str) -> T:
    """Build a record from decoded JSON; a bad shape names the field and quotes ``body``."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as error:
        raise InvalidResponseError(
            f"{what} does not have the expected shape: {describe_error(error)}", body=body
        ) from None


def _mapping_as_object(value: Any) -> Any:
    # Metadata is typed Mapping: any mapping (a MappingProxyType...) is a JSON object.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


_dumps: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_mapping_as_object
).encode


def encode_sms(sms: Sms, *, max_metadata_size: int | None = None) -> bytes:
    """The JSON body of ``POST /sms`` for ``sms`` (``key`` is never sent).

    Args:
        sms: the message, already checked (:func:`~vortext_async._validation.check_sms`).
        max_metadata_size: the most bytes ``metadata`` may take in the body; more is an
            :class:`InvalidRequestError` (None: no limit).
    """
    if sms.metadata is None:
        return _dumps({"phoneNumber": sms.phone_number, "message": sms.message}).encode()
    body = _dumps(
        {"phoneNumber": sms.phone_number, "message": sms.message, "metadata": sms.metadata}
    ).encode()
    if max_metadata_size is not None and len(body) > max_metadata_size:
        # Only a body over the limit can hold metadata over it: measure that alone.
        size = len(_dumps(sms.metadata).encode())
        if size > max_metadata_size:
            raise InvalidRequestError(
                "metadata",
                sms.metadata,
                f"is {size:,} bytes as JSON, over the limit of {max_metadata_size:,}",
            )
    return body
