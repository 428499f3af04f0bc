"""Checks of a message before anything is sent.

The server is the judge of phone numbers (the API's own example is longer than a
valid French number), so the default check is only of shape: a ``+``, digits and a
sane length.  ``strict=True`` asks for E.164 (at most 15 digits, no leading zero).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ._errors import InvalidRequestError
from ._models import Sms

__all__ = ["check_sms"]

_LOOSE_NUMBER = re.compile(r"\+\d{3,20}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


def check_sms(sms: Sms, *, strict_numbers: bool = False) -> None:
    """Raise :class:`InvalidRequestError` naming the first bad field of ``sms``."""
    number = sms.phone_number
    if not isinstance(number, str):
        raise InvalidRequestError("phone_number", number, "must be a string such as '+33611272727'")
    if strict_numbers:
        if not _E164.fullmatch(number):
            raise InvalidRequestError(
                "phone_number",
                number,
                "is not E.164 ('+', 7 to 15 digits, no leading 0)",
            )
    elif not _LOOSE_NUMBER.fullmatch(number):
        raise InvalidRequestError(
            "phone_number", number, "must be '+' followed by 3 to 20 digits, with no spaces"
        )
    message = sms.message
    if not isinstance(message, str):
        raise InvalidRequestError("message", message, "must be a string")
    if not message.strip():
        raise InvalidRequestError("message", message, "is empty")
    metadata = sms.metadata
    if metadata is None:
        return
    if not isinstance(metadata, Mapping):
        raise InvalidRequestError("metadata", metadata, "must be a JSON object (a dict)")
    for key in metadata:
        if not isinstance(key, str):
            raise InvalidRequestError("metadata", metadata, f"key {key!r} is not a string")
    # Whether the values are JSON is checked when the body is encoded, once.
