"""The emulator's view of the Vortext wire format, in one place.

Independent of the client package on purpose: the emulator checks the client from
the outside, so it must not share the client's records or converter.  What the API
reference documents is followed exactly; what it leaves open is ASSUMED here, in
named constants, so it is easy to find and to change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

JSON: TypeAlias = str | int | float | bool | Sequence["JSON"] | Mapping[str, "JSON"] | None
"""A JSON value, as the emulator reads and writes it (its own, not the client's)."""
JSONObject: TypeAlias = dict[str, JSON]
"""A JSON object: a send's ``metadata``, a body the emulator answers."""

# Paths (documented: /status; seen in a public integration: /sms; ASSUMED: detail).
STATUS_PATH = "/status"
SMS_PATH = "/sms"
SMS_DETAIL_PREFIX = "/sms/"

# Send body fields (documented).
PHONE_NUMBER = "phoneNumber"
MESSAGE = "message"
METADATA = "metadata"
# Send answer (seen in a public integration): a non-empty messageId.
MESSAGE_ID = "messageId"
SEND_STATUS = 201
"""ASSUMED: a send is answered 201 Created (the client accepts any 2xx)."""

CREATED_AT = "createdAt"
"""ASSUMED: the SMS detail's date and status fields."""
SENT_AT = "sentAt"
STATUS = "status"
STATUS_SENT = "SENT"
"""ASSUMED: the status of an SMS the emulator accepted."""

SERVICE_UP = {"status": "UP", "service": "vortext-emulator"}
"""ASSUMED: the body of ``GET /status`` (plus ``time``, the server's date)."""
SERVICE_TIME = "time"

NOT_PROCESSED_STATUSES = frozenset({503})
"""ASSUMED: a 503 means "not processed"; other 5xx answers come after processing."""

# PUSH body (documented).
PUSH_RESPONSE = "response"
PUSH_CONTENT = "content"
PUSH_ANSWERED_AT = "answeredAt"
PUSH_MESSAGE = "message"

PHONE_SHAPE = re.compile(r"\+[1-9][0-9]{5,16}")
"""The server judges numbers; the emulator checks the shape only: a ``+``, then 6 to 17 digits,
the first not 0 (the documented example ``+3361127272727`` passes).
"""

AUTH_REALM = "vortext"
"""A realm for the ``WWW-Authenticate`` challenge."""


def format_date(moment: datetime) -> str:
    """``2016-06-01T12:27:19.000+0200``: milliseconds and a colon-less offset."""
    if moment.tzinfo is None:
        raise ValueError("format_date needs an aware datetime")
    millis = moment.microsecond // 1000
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}" + moment.strftime("%z")


def utc_now() -> datetime:
    """The wall-clock instant, in UTC, truncated to milliseconds."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def error_body(status: int, reason: str) -> dict[str, Any]:
    """ASSUMED: the JSON of an error answer (a status and a reason a human can read)."""
    return {"status": status, "error": _PHRASES.get(status, "Error"), "message": reason}


def dump(body: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def metadata_key(metadata: Mapping[str, JSON] | None) -> str:
    """A canonical text for a metadata object (to count identical sends)."""
    return "" if metadata is None else json.dumps(metadata, sort_keys=True, separators=(",", ":"))


class InvalidSend(ValueError):
    """A send body the emulator refuses with 400; the message is the reason."""


def parse_send(body: bytes) -> tuple[str, str, JSONObject | None]:
    """Check a ``POST /sms`` body: phone number, message, optional metadata."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidSend(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidSend(f"body must be a JSON object, got {type(data).__name__}")
    phone = data.get(PHONE_NUMBER)
    if not isinstance(phone, str):
        raise InvalidSend(f"{PHONE_NUMBER} must be a string, got {phone!r}")
    if not PHONE_SHAPE.fullmatch(phone):
        raise InvalidSend(f"{PHONE_NUMBER} {phone!r} is not a phone number (+ and digits)")
    message = data.get(MESSAGE)
    if not isinstance(message, str):
        raise InvalidSend(f"{MESSAGE} must be a string, got {message!r}")
    if not message.strip():
        raise InvalidSend(f"{MESSAGE} must not be empty")
    metadata = data.get(METADATA)
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidSend(f"{METADATA} must be a JSON object, got {type(metadata).__name__}")
    return phone, message, metadata


_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
