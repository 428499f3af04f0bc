"""The wire format: names, dates, unknown fields, and errors that name the field."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vortext_async import InvalidResponseError, PushResponse, SentSms, Sms, SmsDetail
from vortext_async._converter import converter, encode_sms, format_date, parse_date, structure

PARIS_SUMMER = dt.timezone(dt.timedelta(hours=2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-06-01T12:27:19.000+0200", dt.datetime(2016, 6, 1, 12, 27, 19, tzinfo=PARIS_SUMMER)),
        ("2020-02-12T13:00:00.000+0000", dt.datetime(2020, 2, 12, 13, tzinfo=dt.UTC)),
        ("2020-02-12T13:00:00.000Z", dt.datetime(2020, 2, 12, 13, tzinfo=dt.UTC)),
        ("2016-06-01T12:27:19+02:00", dt.datetime(2016, 6, 1, 12, 27, 19, tzinfo=PARIS_SUMMER)),
        (
            "2016-06-01T12:27:19.5-0130",
            dt.datetime(
                2016,
                6,
                1,
                12,
                27,
                19,
                500000,
                tzinfo=dt.timezone(-dt.timedelta(hours=1, minutes=30)),
            ),
        ),
    ],
)
def test_dates_are_read_in_every_accepted_form(text: str, expected: dt.datetime) -> None:
    parsed = parse_date(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    ["2016-06-01T12:27:19.000", "2016-06-01 12:27:19.000+0200", "20160601T122719+0200", "", "x"],
)
def test_dates_without_offset_or_in_other_shapes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"2016-06-01T12:27:19\.000\+0200"):
        parse_date(text)


def test_dates_are_written_exactly_as_the_api_writes_them() -> None:
    when = dt.datetime(2016, 6, 1, 12, 27, 19, 123456, tzinfo=PARIS_SUMMER)
    assert format_date(when) == "2016-06-01T12:27:19.123+0200"
    assert format_date(when.astimezone(dt.UTC)) == "2016-06-01T10:27:19.123+0000"


def test_a_naive_datetime_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        format_date(dt.datetime(2016, 6, 1, 12, 27, 19))


OFFSETS = st.integers(-23 * 60 + 1, 23 * 60 - 1).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


@given(st.datetimes(timezones=OFFSETS, min_value=dt.datetime(1, 1, 2)))
def test_dates_round_trip_to_the_millisecond(when: dt.datetime) -> None:
    parsed = parse_date(format_date(when))
    assert parsed == when.replace(microsecond=when.microsecond // 1000 * 1000)
    assert parsed.utcoffset() == when.utcoffset()


def test_send_body_is_camel_case_json_without_the_key() -> None:
    body = encode_sms(
        Sms("+3361127272727", "Please call me", metadata={"myCustomerId": "123de32"}, key="k1")
    )
    assert json.loads(body) == {
        "phoneNumber": "+3361127272727",
        "message": "Please call me",
        "metadata": {"myCustomerId": "123de32"},
    }
    assert b"metadata" not in encode_sms(Sms("+33611272727", "hi"))


def test_unknown_fields_are_kept_not_fatal() -> None:
    data = {
        "messageId": "m-1",
        "phoneNumber": "+33611272727",
        "message": "hi",
        "metadata": {"a": "b"},
        "createdAt": "2016-06-01T12:27:19.000+0200",
        "status": "DELIVERED",
    }
    detail = structure(data, SmsDetail, body=json.dumps(data), what="the SMS")
    assert detail.message_id == "m-1"
    assert detail.metadata == {"a": "b"}
    assert detail.extra == {"createdAt": "2016-06-01T12:27:19.000+0200", "status": "DELIVERED"}
    assert converter.unstructure(detail) == data


def test_a_missing_or_mistyped_field_names_the_wire_field_and_quotes_the_body() -> None:
    body = '{"messageId": 42}'
    with pytest.raises(InvalidResponseError) as caught:
        structure(json.loads(body), SentSms, body=body, what="the answer")
    assert "$.messageId" in str(caught.value)
    assert "42" in str(caught.value)
    assert caught.value.body == body

    push = {"response": {"content": "yes"}, "message": {"messageId": "1", "phoneNumber": "+33"}}
    with pytest.raises(InvalidResponseError) as caught:
        structure(push, PushResponse, body=json.dumps(push), what="the push")
    text = str(caught.value)
    assert "$.response.answeredAt" in text
    assert "$.message" not in text  # every field of the SMS is optional


def test_push_bodies_round_trip_through_the_converter() -> None:
    body = {
        "response": {"content": "Yes, call me", "answeredAt": "2020-02-12T13:00:00.000+0000"},
        "message": {
            "messageId": "m-9",
            "phoneNumber": "+33611272727",
            "message": "Call?",
            "metadata": {"myCustomerId": "123de32"},
        },
    }
    push = structure(body, PushResponse, body=json.dumps(body), what="the push")
    assert push.response.answered_at == dt.datetime(2020, 2, 12, 13, tzinfo=dt.UTC)
    assert push.message.metadata == {"myCustomerId": "123de32"}
    assert converter.unstructure(push) == body
