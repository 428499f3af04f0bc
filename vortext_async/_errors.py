"""Every exception vortext-async raises, documented in one place.

The hierarchy is flat on purpose (as in httpx): catch :class:`VortextError` for
everything, or one class for one situation.  Nothing here imports anything else of
the package, and nothing here ever holds a credential::

    VortextError
    ├── ConfigurationError            bad client settings (ValueError)
    ├── InvalidRequestError           bad input to a call, before anything is sent (ValueError)
    │   └── BadLineError              one bad record of a bulk input file (command line)
    ├── TransportError                the HTTP exchange itself failed
    │   ├── ConnectError              no connection could be made (never sent)
    │   ├── PoolTimeoutError          no pooled connection in time (never sent)
    │   ├── RequestTimeoutError       the answer did not come in time
    │   └── ProtocolError             the connection broke or spoke nonsense
    ├── HTTPStatusError               the server answered with a non-2xx status
    │   ├── BadRequestError           400, 422
    │   ├── AuthenticationError       401, 403
    │   ├── NotFoundError             404
    │   ├── RateLimitedError          429, with ``retry_after``
    │   ├── ServerError               5xx
    │   └── UnexpectedStatusError     anything else
    ├── InvalidResponseError          a 2xx answer we cannot read (not JSON, wrong shape)
    ├── InvalidPushError              a PUSH body that is not what Vortext sends (ValueError)
    ├── UncertainSendError            an SMS that may or may not have been accepted
    ├── WaitBudgetExceededError       the rate limiter could not admit a send in time
    ├── ClientClosedError             the client is closed or shutting down
    ├── WrongEventLoopError           the client is used from a second event loop (RuntimeError)
    ├── LimiterUnavailableError       the shared (Redis) limiter cannot be reached
    ├── SyncInEventLoopError          a blocking call from inside a running event loop
    └── JournalError                  a bulk job's journal failed (SQLite file, PostgreSQL)
        └── JournalBusyError          a SQLite journal is held by another running job

    InputFormatError (ValueError)     a bulk input file that cannot be read at all

Every send ends in one of three ways (see "Delivery guarantees" in the documentation):
it returns a :class:`SentSms` (sent), raises :class:`UncertainSendError`
(perhaps sent: never resent by default), or raises any other :class:`VortextError`
(certainly not sent: :attr:`VortextError.certainly_not_sent` is true for those).
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._models import JSONValue  # records and errors import nothing of ours at run time

__all__ = [
    "AuthenticationError",
    "BadLineError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "HTTPStatusError",
    "InputFormatError",
    "InvalidPushError",
    "InvalidRequestError",
    "InvalidResponseError",
    "JournalBusyError",
    "JournalError",
    "LimiterUnavailableError",
    "NotFoundError",
    "PoolTimeoutError",
    "ProtocolError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ServerError",
    "SyncInEventLoopError",
    "TransportError",
    "UncertainSendError",
    "UnexpectedStatusError",
    "VortextError",
    "WaitBudgetExceededError",
    "WrongEventLoopError",
]

_BODY_EXCERPT = 500
_BODY_KEPT = 2048
"""Bytes of an answer's body an error keeps at most: an excerpt, never a whole body."""


def _excerpt(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if len(text) > _BODY_EXCERPT:
        return text[:_BODY_EXCERPT] + f"... ({len(text)} characters)"
    return text


class _ShortRepr(reprlib.Repr):
    """``repr`` cut short: a 1 MB text, a 5,000-digit int or metadata nested 10,000 deep
    is shown in a line, and showing it never raises."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = 120
        self.maxother = 120
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = 8

    def repr_int(self, x: int, level: int) -> str:
        if abs(x).bit_length() > 256:  # past 4,300 digits, repr() itself raises
            return f"<int of {abs(x).bit_length()} bits>"
        return super().repr_int(x, level)

    def repr_instance(self, x: object, level: int) -> str:
        try:
            return super().repr_instance(x, level)
        except Exception:
            return f"<{type(x).__name__}>"


_short_repr = _ShortRepr().repr


class VortextError(Exception):
    """Base class of every error raised by vortext-async.

    ``attempts`` is how many requests were made for the call that failed (0 when it
    failed before any request); it is set by the retry layer.
    """

    certainly_not_sent: bool = True
    """True when the server certainly did not accept an SMS because of this failure."""
    transient: bool = False
    """True when the same request may succeed later (a read is retried then)."""
    safe_to_resend: bool = False
    """True when a send that failed so may be sent again: the server certainly did not
    process it and a later attempt may go through (a connect failure, a pool timeout,
    a 429, a 503)."""
    about_the_message: bool = False
    """True when the message itself was refused (bad input, a 400): sending it again
    would fail again."""
    retry_after: float | None = None
    """The server's ``Retry-After`` in seconds, when it sent one we could read."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = 0

    def __str__(self) -> str:
        if self.attempts > 1:
            return f"{self.message} (after {self.attempts} attempts)"
        return self.message


class ConfigurationError(VortextError, ValueError):
    """The client was configured wrongly (a missing credential, a bad base URL...)."""


class InvalidRequestError(VortextError, ValueError):
    """An argument of a call is invalid; nothing was sent.

    ``field`` names the argument (``"phone_number"``, ``"metadata"``...) and
    ``value`` is the offending value.
    """

    about_the_message = True

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {field} {_short_repr(value)}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class BadLineError(InvalidRequestError):
    """One record of a bulk input file is invalid; the job goes on without it.

    ``line`` is the number (from 1) of the record's first line in ``source``.
    """

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"line {line}", line, reason)
        self.message = f"{source}, line {line}: {reason}"
        self.source = source
        self.line = line


class InputFormatError(ValueError):
    """A bulk input file as a whole cannot be read (no header, a required column missing...).

    A ``ValueError`` only (not a :class:`VortextError`): it stops the command line's
    ``bulk`` before any message is read.
    """


class InvalidPushError(VortextError, ValueError):
    """A PUSH body that is not what Vortext sends.

    ``reason`` says what was wrong: which field (by its wire path, such as
    ``$.response.answeredAt``) and which value.  The body itself is not kept: it
    holds a person's reply.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid PUSH body: {reason}")
        self.reason = reason


# -- transport --------------------------------------------------------------------


class TransportError(VortextError):
    """The HTTP exchange failed before a complete answer was read.

    ``request_sent`` tells whether the request may have reached the server: false
    only when the failure certainly happened before anything was written.
    """

    transient = True

    def __init__(self, message: str, *, method: str, url: str, request_sent: bool) -> None:
        super().__init__(f"{method} {url}: {message}")
        self.method = method
        self.url = url
        self.request_sent = request_sent
        self.certainly_not_sent = not request_sent


class ConnectError(TransportError):
    """No connection could be opened (refused, unreachable, TLS or connect timeout)."""

    safe_to_resend = True

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message, method=method, url=url, request_sent=False)


class PoolTimeoutError(TransportError):
    """No connection of the pool became free in time; the request was never written."""

    safe_to_resend = True

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message, method=method, url=url, request_sent=False)


class RequestTimeoutError(TransportError):
    """The server did not answer (or accept the body) in time; it may have got it."""


class ProtocolError(TransportError):
    """The connection was dropped or the server broke HTTP; it may have got the request."""


# -- HTTP answers -----------------------------------------------------------------

_TRANSIENT_4XX = frozenset({408, 429})
"""Statuses below 500 that a later identical request may not get (timeout, rate limit)."""
_NOT_ABOUT_THE_MESSAGE_4XX = frozenset({401, 403, 404, 408, 409, 425, 429})
"""4xx statuses that say nothing against the message itself: the credentials, the resource, the
timing or the rate were refused, so a later run may send it.
"""


class HTTPStatusError(VortextError):
    """The server answered with a non-2xx status.

    Carries ``status_code``, ``headers`` (a plain dict, lower-case names) and the
    start of the ``body`` as bytes (its first 2 KiB at most, decoded).
    """

    def __init__(
        self,
        status_code: int,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        explanation: str = "",
    ) -> None:
        detail = f": {_excerpt(body)}" if body else ""
        hint = f" ({explanation})" if explanation else ""
        super().__init__(f"{method} {url} answered {status_code}{hint}{detail}")
        self.status_code = status_code
        self.method = method
        self.url = url
        self.headers = dict(headers)
        self.body = body[:_BODY_KEPT]
        self.transient = status_code in _TRANSIENT_4XX or status_code >= 500
        self.about_the_message = (
            400 <= status_code < 500 and status_code not in _NOT_ABOUT_THE_MESSAGE_4XX
        )
        if 300 <= status_code < 400:
            # A redirect says nothing of what the server did with a request: it may
            # have taken the SMS, then pointed elsewhere.  Never followed, never resent.
            self.certainly_not_sent = False

    def json(self) -> JSONValue:
        """The body decoded as JSON (raises ``ValueError`` if it is not JSON)."""
        import json

        value: JSONValue = json.loads(self.body)
        return value


class BadRequestError(HTTPStatusError):
    """400 or 422: the server rejected the request's content; it was not sent."""

    def __init__(
        self,
        status_code: int,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        explanation: str = "",
    ) -> None:
        super().__init__(
            status_code, method=method, url=url, headers=headers, body=body, explanation=explanation
        )
        self.about_the_message = True


class AuthenticationError(HTTPStatusError):
    """401 or 403: the credentials were refused; check username and password."""


class NotFoundError(HTTPStatusError):
    """404: no such resource (for example an unknown message id)."""


class RateLimitedError(HTTPStatusError):
    """429: the account's rate limit was exceeded; the SMS was not accepted.

    ``retry_after`` is the server's ``Retry-After`` in seconds, or ``None`` when it
    sent none (or one we could not read).
    """

    safe_to_resend = True

    def __init__(
        self,
        status_code: int,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        retry_after: float | None,
    ) -> None:
        wait = f"retry after {retry_after:g} s" if retry_after is not None else ""
        super().__init__(
            status_code,
            method=method,
            url=url,
            headers=headers,
            body=body,
            explanation=f"rate limited{'; ' + wait if wait else ''}",
        )
        self.retry_after = retry_after


class ServerError(HTTPStatusError):
    """5xx: the server failed.

    For a send, ``certainly_not_sent`` is true only for statuses that mean the request
    was not processed (503); ``retry_after`` is the server's ``Retry-After``, if any.
    """

    def __init__(
        self,
        status_code: int,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        explanation: str = "",
        certainly_not_sent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            status_code, method=method, url=url, headers=headers, body=body, explanation=explanation
        )
        self.certainly_not_sent = certainly_not_sent
        self.safe_to_resend = certainly_not_sent
        self.retry_after = retry_after


class UnexpectedStatusError(HTTPStatusError):
    """Any other non-2xx status (a redirect, an unusual 4xx).

    A redirect (3xx) to a send makes it uncertain: the server may have taken it.
    """


class InvalidResponseError(VortextError):
    """A 2xx answer that is not what the API promises (not JSON, a missing field...).

    ``body`` holds the start of the answer (2 KiB at most).  For a send this means the
    server probably took the SMS but did not say under which id: a send raises
    :class:`UncertainSendError` with this error as its cause instead.
    """

    certainly_not_sent = False

    def __init__(self, message: str, *, body: bytes | str) -> None:
        super().__init__(f"{message}; body: {_excerpt(body)!r}")
        self.body = body[:_BODY_KEPT]


# -- delivery ----------------------------------------------------------------------


class UncertainSendError(VortextError):
    """The SMS may or may not have been accepted by the server.

    The request may have reached it (a read timeout, a dropped connection after the
    request was written, a 500/502/504).  It is **not** resent by default, since it
    would reach the person twice; ``sms`` is the message and ``cause`` what happened,
    so the caller can reconcile (for example by fetching it later or by asking support).
    """

    certainly_not_sent = False

    def __init__(self, sms: object, cause: BaseException) -> None:
        super().__init__(f"the SMS may or may not have been sent: {cause}")
        self.sms = sms
        self.cause = cause


class WaitBudgetExceededError(VortextError):
    """The rate limiter could not admit the send within the caller's ``max_wait``.

    Nothing was sent and no token was taken.  ``expected_wait`` is the limiter's
    estimate in seconds of how long the send would have waited, suitable for a
    ``Retry-After`` header.
    """

    def __init__(self, expected_wait: float, max_wait: float) -> None:
        super().__init__(
            f"the rate limit would delay this send by about {expected_wait:.3f} s, "
            f"more than the allowed max_wait of {max_wait:g} s"
        )
        self.expected_wait = expected_wait
        self.max_wait = max_wait


class ClientClosedError(VortextError):
    """The client is closed, or shutting down and refusing new sends."""


class WrongEventLoopError(VortextError, RuntimeError):
    """The client is used from an event loop other than the one it was first used on.

    Its pooled connections and the rate limiter's timers belong to that first loop
    (closed once its ``asyncio.run`` returned), so the call is refused before anything
    is sent.  Create the client inside the coroutine that uses it (one per
    ``asyncio.run``).  A ``RuntimeError`` too, as asyncio's own loop errors are.
    """


class LimiterUnavailableError(VortextError):
    """The shared rate limiter's backend (Redis) cannot be reached.

    The send is refused rather than made without the account's caps.  ``url`` is the
    backend's address with any password removed.
    """

    def __init__(self, url: str, cause: BaseException) -> None:
        super().__init__(f"the rate limiter's Redis at {url} is unavailable: {cause}")
        self.url = url


class SyncInEventLoopError(VortextError, RuntimeError):
    """A blocking call of ``vortext_async.sync`` was made from inside a running event loop.

    It would block that loop (and every task on it) for the whole call, so it is
    refused before anything is sent.  In ``async`` code, ``await`` the asyncio
    :class:`VortextClient` instead, or run the blocking call in a worker thread
    (``await asyncio.to_thread(client.send_sms, ...)``).
    """


class JournalError(VortextError):
    """A bulk job's journal cannot be opened, or failed during the job.

    The job stops claiming messages at once; every message read has its result.
    ``journal`` names the journal: a file path, or a PostgreSQL URL without its
    password.
    """

    def __init__(self, journal: str, message: str) -> None:
        super().__init__(f"the bulk job's journal {journal} {message}")
        self.journal = journal


class JournalBusyError(JournalError):
    """A SQLite journal is held by another running job (one job per file at a time).

    Raised before anything is sent.  ``holder`` says which process holds it, when known.
    """

    def __init__(self, journal: str, holder: str | None) -> None:
        who = f" (held by {holder})" if holder else ""
        super().__init__(
            journal,
            f"is in use by another running job{who}; nothing was sent. Wait for "
            "that job to end, or give this job a journal of its own",
        )
        self.holder = holder
