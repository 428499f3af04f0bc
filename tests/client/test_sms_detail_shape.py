"""``GET /sms/{id}`` has an assumed shape: a successful read never fails on a field we guessed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.faults import Fault, FaultServer
from vortext_async import InvalidResponseError, RetryPolicy, SmsDetail, VortextClient

FULL: dict[str, Any] = {
    "messageId": "m-1",
    "phoneNumber": "+33611272727",
    "message": "Please call me",
    "metadata": {"myCustomerId": "123de32"},
}
FIELDS = {
    "messageId": "message_id",
    "phoneNumber": "phone_number",
    "message": "message",
    "metadata": "metadata",
}


async def read(body: dict[str, Any] | list[Any]) -> SmsDetail:
    async with FaultServer() as server:
        server.script(Fault.answer(200, json.dumps(body)))
        async with VortextClient(
            "user", "pass", base_url=server.url, retry=RetryPolicy(attempts=1)
        ) as client:
            return await client.get_sms("m-1")


@pytest.mark.parametrize("wire_name", list(FIELDS))
async def test_each_guessed_field_may_be_missing(wire_name: str) -> None:
    body = {name: value for name, value in FULL.items() if name != wire_name}
    detail = await read({**body, "sentAt": "2016-06-01T12:27:19.000+0200"})
    assert getattr(detail, FIELDS[wire_name]) is None
    for name, value in body.items():
        assert getattr(detail, FIELDS[name]) == value
    assert detail.extra == {"sentAt": "2016-06-01T12:27:19.000+0200"}


async def test_an_empty_object_and_null_fields_are_read() -> None:
    assert await read({}) == SmsDetail()
    assert await read(dict.fromkeys(FULL)) == SmsDetail()


async def test_a_body_that_is_not_an_object_is_still_an_invalid_response() -> None:
    with pytest.raises(InvalidResponseError, match="expected a JSON object"):
        await read([FULL])
