"""The records of the Vortext API: what we send and what the server answers.

Plain frozen attrs classes in Python's snake_case; the camelCase wire format and the
API's date format live in :mod:`vortext_async._converter`.  Records hold data and
check nothing, so a bulk job can carry a bad message to its result instead of
crashing while reading its input; the client checks a message before sending it.

Fields the server sends that a record does not name are kept in its ``extra``
mapping (wire names, raw JSON values): the API may grow without breaking anyone.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import attrs

__all__ = [
    "JSONObject",
    "JSONValue",
    "Outcome",
    "PushReply",
    "PushResponse",
    "SendResult",
    "SentSms",
    "ServiceStatus",
    "Sms",
    "SmsDetail",
]

JSONValue: TypeAlias = (
    str | int | float | bool | Sequence["JSONValue"] | Mapping[str, "JSONValue"] | None
)
"""A JSON value as Python holds it: what ``json.loads`` gives, or any mapping and sequence."""

JSONObject: TypeAlias = Mapping[str, JSONValue]
"""A JSON object: ``metadata``, and the fields a record keeps in ``extra``."""


def _extra() -> Any:  # attrs' field, typed as its value (a private helper)
    return attrs.field(factory=dict, kw_only=True, repr=False)


@attrs.frozen
class Sms:
    """An SMS to send.

    ``metadata`` is an optional JSON object of the caller's own data; the server keeps
    it and gives it back with the SMS detail and with PUSH replies.  ``key`` is the
    caller's identifier for the message (never sent): bulk jobs use it to report
    results and to resume.
    """

    phone_number: str
    message: str
    metadata: JSONObject | None = attrs.field(default=None, kw_only=True)
    key: str | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class SentSms:
    """The server's answer to a send: it accepted the SMS under ``message_id``."""

    message_id: str
    extra: Mapping[str, JSONValue] = _extra()


@attrs.frozen
class SmsDetail:
    """An SMS as the server describes it (``GET /sms/{messageId}``, PUSH bodies).

    The API documents no field of it: its only PUSH example holds ``"message": { }``,
    and the shape of ``GET /sms/{messageId}`` is assumed.  So every field is optional
    (``None`` when the server left it out or sent ``null``), and a field present with
    the wrong type is still an error.  Fields not named here (dates, delivery status)
    are kept in ``extra`` under their wire names.
    """

    message_id: str | None = None
    """The server's id of the SMS (``messageId``)."""
    phone_number: str | None = None
    """The recipient (``phoneNumber``)."""
    message: str | None = None
    """The text sent (``message``)."""
    metadata: JSONObject | None = attrs.field(default=None, kw_only=True)
    """The caller's own JSON object given with the send, as the server kept it."""
    extra: Mapping[str, JSONValue] = _extra()
    """Fields the server sent that are not named above (wire names, raw JSON values)."""


@attrs.frozen
class ServiceStatus:
    """The answer of ``GET /status``.

    Its shape is not documented: ``status`` holds a ``status`` field when the server
    sends one (or the body when it is a bare JSON string), every other field is in
    ``extra``.
    """

    status: str | None = attrs.field(default=None, kw_only=True)
    extra: Mapping[str, JSONValue] = _extra()


@attrs.frozen
class PushReply:
    """A recipient's answer to an SMS: what they wrote and when."""

    content: str
    answered_at: _dt.datetime
    extra: Mapping[str, JSONValue] = _extra()


@attrs.frozen
class PushResponse:
    """The body Vortext POSTs when a recipient answers: the reply and the original SMS.

    ``message`` is an empty :class:`SmsDetail` (every field ``None``) when the body
    holds ``"message": { }``, as the API reference's example does, or no ``message``.
    """

    response: PushReply
    """What the recipient wrote, and when."""
    message: SmsDetail = attrs.field(factory=SmsDetail)
    """The SMS they answered, as far as the body describes it."""
    extra: Mapping[str, JSONValue] = _extra()
    """Fields of the body not named above."""


class Outcome(enum.Enum):
    """How a send ended (see "Delivery guarantees" in the documentation)."""

    SENT = "sent"
    """The server accepted the SMS and gave its message id."""
    FAILED = "failed"
    """The server certainly did not accept it."""
    UNCERTAIN = "uncertain"
    """The request may have reached the server; we cannot know.  Never resent by default."""


@attrs.frozen
class SendResult:
    """How one send ended, for bulk jobs and for sends finished in the background.

    ``sent`` is the server's answer when ``outcome`` is SENT; ``error`` the reason
    otherwise (an :class:`UncertainSendError` for UNCERTAIN).  ``resumed`` is true
    when a bulk job took the result from its journal instead of sending again.
    """

    sms: Sms
    outcome: Outcome
    sent: SentSms | None = attrs.field(default=None, kw_only=True)
    error: BaseException | None = attrs.field(default=None, kw_only=True)
    resumed: bool = attrs.field(default=False, kw_only=True)

    @property
    def message_id(self) -> str | None:
        """The server's id of the SMS, when it was sent."""
        return self.sent.message_id if self.sent is not None else None
