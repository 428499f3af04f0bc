"""The PUSH body exactly as the API reference documents it, and every field left out.

The reference's only example of a PUSH body (cegedim.cloud's "SMS - Get started"
page, "Message Body"; the project keeps its text in
``shared/reference/vortext-sms-get-started.txt``, line 261, outside this repository)
holds an empty ``message``.  Strict where it matters (``response.content`` and
``response.answeredAt``), lenient where the API is silent (every field of the SMS).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from vortext_async.webhooks import (
    InvalidPushError,
    PushReceiver,
    PushResponse,
    SmsDetail,
    parse_push,
)

DOCUMENTED = (
    b'{ "response": { "content": "Response of your customer", '
    b'"answeredAt" : "2020-02-12T13:00:00.000+0000" }, "message": { }}'
)
"""Copied byte for byte from the reference page's "Message Body" example."""

REFERENCE = next(
    (
        found
        for parent in Path(__file__).resolve().parents
        if (found := parent / "shared/reference/vortext-sms-get-started.txt").exists()
    ),
    None,
)
"""The project's copy of the reference page, when this checkout sits beside it."""

FULL: dict[str, Any] = {
    "response": {"content": "Yes, call me at 5", "answeredAt": "2020-02-12T13:00:00.000+0000"},
    "message": {
        "messageId": "msg-1",
        "phoneNumber": "+3361127272727",
        "message": "Please call me",
        "metadata": {"myCustomerId": "123de32", "caller": "MyApp 2.2"},
    },
}
ANSWERED_AT = dt.datetime(2020, 2, 12, 13, tzinfo=dt.UTC)


async def post(body: bytes) -> tuple[httpx.Response, list[PushResponse]]:
    handled: list[PushResponse] = []

    async def on_reply(push: PushResponse) -> None:
        handled.append(push)

    transport = httpx.ASGITransport(app=PushReceiver(on_reply), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        answer = await client.post("/", content=body, headers={"Content-Type": "application/json"})
    return answer, handled


def without(*path: str) -> bytes:
    body = copy.deepcopy(FULL)
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return json.dumps(body).encode()


def test_the_copy_matches_the_reference_page_when_it_is_at_hand() -> None:
    if REFERENCE is None:
        pytest.skip("shared/reference/ is not beside this checkout")
    lines = REFERENCE.read_bytes().splitlines()
    assert DOCUMENTED in lines


def test_the_documented_body_is_read_with_an_empty_sms() -> None:
    push = parse_push(DOCUMENTED)
    assert push.response.content == "Response of your customer"
    assert push.response.answered_at == ANSWERED_AT
    assert push.message == SmsDetail()
    assert (push.message.message_id, push.message.phone_number) == (None, None)
    assert (push.message.message, push.message.metadata) == (None, None)
    assert push.extra == {}
    assert push.message.extra == {}


async def test_the_receiver_hands_the_documented_body_over_and_answers_200() -> None:
    answer, handled = await post(DOCUMENTED)
    assert (answer.status_code, answer.json()) == (200, {"status": "handled"})
    (push,) = handled
    assert push.response.content == "Response of your customer"
    assert push.message.message_id is None


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("message", "messageId"), "message_id"),
        (("message", "phoneNumber"), "phone_number"),
        (("message", "message"), "message"),
        (("message", "metadata"), "metadata"),
    ],
)
async def test_each_field_of_the_sms_may_be_left_out(path: tuple[str, ...], field: str) -> None:
    answer, handled = await post(without(*path))
    assert answer.status_code == 200
    (push,) = handled
    assert getattr(push.message, field) is None
    kept = {
        "message_id": "msg-1",
        "phone_number": "+3361127272727",
        "message": "Please call me",
        "metadata": {"myCustomerId": "123de32", "caller": "MyApp 2.2"},
    }
    del kept[field]
    assert {name: getattr(push.message, name) for name in kept} == kept
    assert push.response.content == "Yes, call me at 5"


async def test_the_sms_itself_may_be_left_out_or_null() -> None:
    for body in (without("message"), json.dumps({**FULL, "message": None}).encode()):
        answer, handled = await post(body)
        assert answer.status_code == 200
        assert handled[0].message == SmsDetail()


def test_null_fields_of_the_sms_are_none_and_unknown_ones_are_kept() -> None:
    body = copy.deepcopy(FULL)
    body["message"] = {"messageId": None, "metadata": None, "deliveredAt": "2020-02-12"}
    push = parse_push(json.dumps(body))
    assert push.message == SmsDetail(extra={"deliveredAt": "2020-02-12"})
    assert push.message.extra == {"deliveredAt": "2020-02-12"}


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("response",), "$.response"),
        (("response", "content"), "$.response.content"),
        (("response", "answeredAt"), "$.response.answeredAt"),
    ],
)
async def test_the_reply_itself_is_still_required(path: tuple[str, ...], where: str) -> None:
    with pytest.raises(InvalidPushError, match=f"required field missing @ \\{where}"):
        parse_push(without(*path))
    answer, handled = await post(without(*path))
    assert answer.status_code == 400
    assert where in answer.json()["reason"]
    assert handled == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"messageId": 42}, "$.message.messageId"),
        ({"metadata": [1]}, "$.message.metadata"),
    ],
)
def test_a_field_of_the_sms_with_the_wrong_type_is_still_refused(
    change: dict[str, Any], where: str
) -> None:
    body = copy.deepcopy(FULL)
    body["message"].update(change)
    with pytest.raises(InvalidPushError, match=f"@ \\{where}"):
        parse_push(json.dumps(body))


async def test_identical_pushes_without_a_message_id_are_each_handed_over() -> None:
    # Two people answering "STOP" in the same millisecond: without a message id the
    # bodies are the same bytes, and dropping one as a duplicate would lose a reply.
    handled: list[PushResponse] = []

    async def on_reply(push: PushResponse) -> None:
        handled.append(push)

    receiver = PushReceiver(on_reply)
    transport = httpx.ASGITransport(app=receiver, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        for _ in range(2):
            answer = await client.post(
                "/", content=DOCUMENTED, headers={"Content-Type": "application/json"}
            )
            assert answer.json() == {"status": "handled"}
        full = json.dumps(FULL).encode()
        statuses = [
            (
                await client.post("/", content=full, headers={"Content-Type": "application/json"})
            ).json()["status"]
            for _ in range(2)
        ]
    assert statuses == ["handled", "duplicate"]  # with an id, a repeat is still deduplicated
    assert len(handled) == 3
