"""Asyncio client for Vortext, the SMS gateway of cegedim.cloud.

Everything public is importable from here; the public submodules ``webhooks``,
``emulator``, ``testing``, ``fastapi`` and ``cli`` hold the optional parts and are
imported only when used.  The Redis-backed limiter is :class:`RedisRateLimiter`
(``redis`` extra).
"""

from ._api import DATACENTER_BASE_URL, INTERNET_BASE_URL
from ._bulk import (
    BulkJob,
    BulkProgress,
    BulkSummary,
    JournalRun,
    JournalStatus,
    journal_jobs,
    journal_status,
    send_bulk,
)
from ._client import DEFAULT_TIMEOUT, VortextClient
from ._clock import Clock, MonotonicClock
from ._errors import (
    AuthenticationError,
    BadLineError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConnectError,
    HTTPStatusError,
    InputFormatError,
    InvalidPushError,
    InvalidRequestError,
    InvalidResponseError,
    JournalBusyError,
    JournalError,
    LimiterUnavailableError,
    NotFoundError,
    PoolTimeoutError,
    ProtocolError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    UncertainSendError,
    UnexpectedStatusError,
    VortextError,
    WaitBudgetExceededError,
)
from ._http import aiohttp_transport
from ._limiter import Limiter, LimiterState, Permit, RateLimit, RateLimiter, WindowState
from ._models import (
    Outcome,
    PushReply,
    PushResponse,
    SendResult,
    SentSms,
    ServiceStatus,
    Sms,
    SmsDetail,
)
from ._redis_limiter import RedisRateLimiter
from ._retry import RetryEvent, RetryPolicy
from ._version import __version__

__all__ = [
    "DATACENTER_BASE_URL",
    "DEFAULT_TIMEOUT",
    "INTERNET_BASE_URL",
    "AuthenticationError",
    "BulkJob",
    "BulkProgress",
    "BulkSummary",
    "BadLineError",
    "BadRequestError",
    "ClientClosedError",
    "Clock",
    "ConfigurationError",
    "ConnectError",
    "HTTPStatusError",
    "InputFormatError",
    "InvalidPushError",
    "InvalidRequestError",
    "InvalidResponseError",
    "JournalBusyError",
    "JournalError",
    "JournalRun",
    "JournalStatus",
    "Limiter",
    "LimiterState",
    "LimiterUnavailableError",
    "MonotonicClock",
    "NotFoundError",
    "Outcome",
    "Permit",
    "PoolTimeoutError",
    "ProtocolError",
    "PushReply",
    "PushResponse",
    "RateLimit",
    "RateLimitedError",
    "RateLimiter",
    "RedisRateLimiter",
    "RequestTimeoutError",
    "RetryEvent",
    "RetryPolicy",
    "SendResult",
    "SentSms",
    "ServerError",
    "ServiceStatus",
    "Sms",
    "SmsDetail",
    "TransportError",
    "UncertainSendError",
    "UnexpectedStatusError",
    "VortextClient",
    "VortextError",
    "WaitBudgetExceededError",
    "WindowState",
    "__version__",
    "aiohttp_transport",
    "journal_jobs",
    "journal_status",
    "send_bulk",
]
