"""Asyncio client for Vortext, the SMS gateway of cegedim.cloud.

Everything public is importable from here; the public submodules ``webhooks``,
``emulator``, ``testing``, ``fastapi``, ``cli`` and ``sync`` (a blocking client) hold
the optional parts and are imported only when used.  The Redis-backed limiter is
:class:`RedisRateLimiter` (``redis`` extra).
"""

from ._api import (
    DATACENTER_BASE_URL,
    INTERNET_BASE_URL,
    MAX_MESSAGE_LENGTH,
    MAX_METADATA_DEPTH,
    MAX_METADATA_SIZE,
)
from ._bulk import BulkJob, BulkProgress, BulkSummary, send_bulk
from ._client import (
    DEFAULT_ATTEMPT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    ClientOptions,
    VortextClient,
)
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
    LimiterUnavailableError,
    NotFoundError,
    PoolTimeoutError,
    ProtocolError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    SyncInEventLoopError,
    TransportError,
    UncertainSendError,
    UnexpectedStatusError,
    VortextError,
    WaitBudgetExceededError,
    WrongEventLoopError,
)
from ._http import aiohttp_transport
from ._learned import LearnedRateLimiter
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
    "DEFAULT_ATTEMPT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "INTERNET_BASE_URL",
    "MAX_MESSAGE_LENGTH",
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_SIZE",
    "AuthenticationError",
    "BulkJob",
    "BulkProgress",
    "BulkSummary",
    "BadLineError",
    "BadRequestError",
    "ClientClosedError",
    "ClientOptions",
    "Clock",
    "ConfigurationError",
    "ConnectError",
    "HTTPStatusError",
    "InputFormatError",
    "InvalidPushError",
    "InvalidRequestError",
    "InvalidResponseError",
    "LearnedRateLimiter",
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
    "SyncInEventLoopError",
    "TransportError",
    "UncertainSendError",
    "UnexpectedStatusError",
    "VortextClient",
    "VortextError",
    "WaitBudgetExceededError",
    "WindowState",
    "WrongEventLoopError",
    "__version__",
    "aiohttp_transport",
    "send_bulk",
]
