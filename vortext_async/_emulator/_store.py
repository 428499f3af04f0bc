"""A bounded store of the SMS the emulator accepted, for tests to read.

Oldest entries are evicted first once ``max_stored`` is reached, so a long
benchmark does not grow memory.  Callers hold the emulator's lock.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from . import _wire


@dataclass(frozen=True, slots=True)
class ReceivedSms:
    """One SMS the emulator accepted, as it stores and serves it.

    ``counted_ns`` is the instant (emulator clock, nanoseconds) it was counted
    against the account's windows.
    """

    message_id: str
    account: str
    phone_number: str
    message: str
    metadata: _wire.JSONObject | None
    created_at: datetime
    counted_ns: int

    def to_wire(self) -> _wire.JSONObject:
        """The ``GET /sms/{messageId}`` body (field names in ``_wire``)."""
        created = _wire.format_date(self.created_at)
        body: _wire.JSONObject = {
            _wire.MESSAGE_ID: self.message_id,
            _wire.PHONE_NUMBER: self.phone_number,
            _wire.MESSAGE: self.message,
            _wire.METADATA: copy.deepcopy(self.metadata),
            _wire.CREATED_AT: created,
            _wire.SENT_AT: created,
            _wire.STATUS: _wire.STATUS_SENT,
        }
        return body


SendKey = tuple[str, str, str]


class MessageStore:
    """Accepted SMS by id, and how many times each (phone, message, metadata) came."""

    __slots__ = ("_by_id", "_counts", "evicted", "max_stored")

    def __init__(self, max_stored: int) -> None:
        if isinstance(max_stored, bool) or not isinstance(max_stored, int) or max_stored < 1:
            raise ValueError(f"max_stored must be a positive integer, got {max_stored!r}")
        self.max_stored = max_stored
        self._by_id: OrderedDict[str, ReceivedSms] = OrderedDict()
        self._counts: OrderedDict[SendKey, int] = OrderedDict()
        self.evicted = 0

    def add(self, sms: ReceivedSms) -> None:
        self._by_id[sms.message_id] = sms
        if len(self._by_id) > self.max_stored:
            self._by_id.popitem(last=False)
            self.evicted += 1
        key = send_key(sms.phone_number, sms.message, sms.metadata)
        self._counts[key] = self._counts.get(key, 0) + 1
        if len(self._counts) > self.max_stored:
            self._counts.popitem(last=False)

    def get(self, message_id: str) -> ReceivedSms | None:
        return self._by_id.get(message_id)

    def messages(self) -> list[ReceivedSms]:
        return list(self._by_id.values())

    def count(self, key: SendKey) -> int:
        return self._counts.get(key, 0)

    def duplicates(self) -> dict[SendKey, int]:
        return {key: n for key, n in self._counts.items() if n > 1}

    def __len__(self) -> int:
        return len(self._by_id)


def send_key(phone_number: str, message: str, metadata: Mapping[str, _wire.JSON] | None) -> SendKey:
    """What makes two sends "the same SMS" for counting."""
    return (phone_number, message, _wire.metadata_key(metadata))
