"""Asyncio client for Vortext, the SMS gateway of cegedim.cloud.

Everything public is importable from here; the submodules ``webhooks``,
``emulator``, ``testing``, ``fastapi`` and ``redis`` hold the optional parts and are
imported only when used.
"""

from ._api import DATACENTER_BASE_URL, INTERNET_BASE_URL
from ._bulk import BulkJob, BulkProgress, BulkSummary, send_bulk
from ._client import DEFAULT_TIMEOUT, VortextClient
from ._clock import Clock, MonotonicClock
from ._errors import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConnectError,
    HTTPStatusError,
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
from ._transport import aiohttp_transport
from ._version import __version__

__all__ = [
    "DATACENTER_BASE_URL",
    "DEFAULT_TIMEOUT",
    "INTERNET_BASE_URL",
    "AuthenticationError",
    "BulkJob",
    "BulkProgress",
    "BulkSummary",
    "BadRequestError",
    "ClientClosedError",
    "Clock",
    "ConfigurationError",
    "ConnectError",
    "HTTPStatusError",
    "InvalidRequestError",
    "InvalidResponseError",
    "JournalBusyError",
    "JournalError",
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
    "send_bulk",
]
