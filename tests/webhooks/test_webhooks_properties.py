"""Properties of the PUSH receiver: no input makes it fail, valid pushes arrive intact."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vortext_async._converter import converter
from vortext_async.webhooks import (
    InvalidPushError,
    PushReceiver,
    PushReply,
    PushResponse,
    SmsDetail,
    parse_push,
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = {"Content-Type": "application/json"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=4)


def extras(known: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Unknown fields, as a growing API may send them."""
    return st.dictionaries(st.text().filter(lambda key: key not in known), json_values, max_size=3)


# Dates the API can write: milliseconds, an offset in whole minutes.
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
answered_ats = st.builds(
    lambda moment, tz: moment.replace(microsecond=moment.microsecond // 1000 * 1000, tzinfo=tz),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    offsets,
)

pushes = st.builds(
    PushResponse,
    response=st.builds(
        PushReply,
        content=st.text(),
        answered_at=answered_ats,
        extra=extras({"content", "answeredAt"}),
    ),
    message=st.builds(
        SmsDetail,
        message_id=st.none() | st.text(),
        phone_number=st.none() | st.text(),
        message=st.none() | st.text(),
        metadata=st.none() | json_objects,
        extra=extras({"messageId", "phoneNumber", "message", "metadata"}),
    ),
    extra=extras({"response", "message"}),
)


def wire(push: PushResponse) -> Any:
    """The push as JSON data, through the package's converter."""
    return json.loads(json.dumps(converter.unstructure(push)))


class Recorder:
    def __init__(self) -> None:
        self.pushes: list[PushResponse] = []

    async def __call__(self, push: PushResponse) -> None:
        self.pushes.append(push)


async def post(body: bytes) -> tuple[httpx.Response, list[PushResponse]]:
    """POST ``body`` to a fresh receiver; its answer and what its handler got."""
    recorder = Recorder()
    transport = httpx.ASGITransport(app=PushReceiver(recorder), client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        response = await client.post("/", content=body, headers=JSON)
    return response, recorder.pushes


def parsed(body: bytes | str) -> PushResponse | str:
    """What parse_push makes of ``body``: a push, or the reason it raised."""
    try:
        return parse_push(body)
    except InvalidPushError as error:
        return error.reason


def check_answer(body: bytes, response: httpx.Response, got: list[PushResponse]) -> None:
    """The receiver's answer agrees with parse_push: 200 and handed over, or 400."""
    expected = parsed(body)
    if isinstance(expected, str):
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_push", "reason": expected}
        assert got == []
    else:
        assert response.status_code == 200
        assert got == [expected]


@SETTINGS
@given(st.binary(max_size=300))
async def test_arbitrary_bytes_are_400_or_handled_never_500(body: bytes) -> None:
    response, got = await post(body)
    check_answer(body, response, got)


@SETTINGS
@given(st.text(max_size=300))
def test_parse_push_of_any_text_returns_a_push_or_raises_invalid_push_error(text: str) -> None:
    result = parsed(text)  # any other exception fails the test
    assert isinstance(result, PushResponse) or result != ""


@SETTINGS
@given(json_values)
async def test_arbitrary_json_values_are_400_or_handled_never_500(value: Any) -> None:
    body = json.dumps(value).encode()
    response, got = await post(body)
    check_answer(body, response, got)


@SETTINGS
@given(pushes)
async def test_valid_pushes_reach_the_handler_with_equal_fields(push: PushResponse) -> None:
    body = json.dumps(wire(push)).encode()
    assert parse_push(body) == push
    response, got = await post(body)
    assert response.status_code == 200
    assert got == [push]
    assert got[0].message.metadata == push.message.metadata


REQUIRED = [("response",), ("response", "content"), ("response", "answeredAt")]
# The API documents "message": { }: the SMS and each of its fields may be left out.
OPTIONAL = [
    ("message",),
    ("message", "messageId"),
    ("message", "phoneNumber"),
    ("message", "message"),
    ("message", "metadata"),
]
# Every field that has a type to break, with a value of that type (to avoid).
TYPED = [*REQUIRED, *OPTIONAL]


def _parent(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path[:-1]:
        data = data[key]
    return data


@SETTINGS
@given(pushes, st.sampled_from(REQUIRED))
async def test_a_push_missing_a_required_field_is_400_naming_it(
    push: PushResponse, path: tuple[str, ...]
) -> None:
    data = wire(push)
    del _parent(data, path)[path[-1]]
    body = json.dumps(data).encode()
    response, got = await post(body)
    assert response.status_code == 400
    assert f"required field missing @ $.{'.'.join(path)}" in response.json()["reason"]
    assert got == []


@SETTINGS
@given(pushes, st.sampled_from(OPTIONAL))
async def test_a_push_missing_an_optional_field_is_handled_with_none(
    push: PushResponse, path: tuple[str, ...]
) -> None:
    data = wire(push)
    del _parent(data, path)[path[-1]]
    response, got = await post(json.dumps(data).encode())
    assert response.status_code == 200
    (handled,) = got
    assert handled.response == push.response
    if path == ("message",):
        assert handled.message == SmsDetail()
    else:
        field = {"messageId": "message_id", "phoneNumber": "phone_number"}.get(path[1], path[1])
        assert getattr(handled.message, field) is None


def _wrong_type(path: tuple[str, ...], value: Any) -> bool:
    """True when ``value`` is not acceptable at ``path``."""
    if path == ("response",):
        return not isinstance(value, dict)
    if path == ("message",):  # ("message", "message") is the text
        return value is not None and not isinstance(value, dict)
    if path[-1] == "metadata":
        return value is not None and not isinstance(value, dict)
    if path[0] == "message":
        return value is not None and not isinstance(value, str)
    return not isinstance(value, str)


@SETTINGS
@given(pushes, st.sampled_from(TYPED), json_values)
async def test_a_push_with_a_retyped_field_is_400_naming_it(
    push: PushResponse, path: tuple[str, ...], value: Any
) -> None:
    data = wire(push)
    _parent(data, path)[path[-1]] = value
    body = json.dumps(data).encode()
    response, got = await post(body)
    check_answer(body, response, got)
    if _wrong_type(path, value):
        assert response.status_code == 400
        assert f"@ $.{'.'.join(path)}" in response.json()["reason"]
