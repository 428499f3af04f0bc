"""Everything we know or assume about the Vortext API, in one place.

The documented facts come from cegedim.cloud's "SMS - Get started" page; the
assumptions (marked ASSUMED) are not documented and are kept here so they are easy
to find and to change.  See ``shared/reference/vortext-api.md`` in the project.
"""

from __future__ import annotations

INTERNET_BASE_URL = "https://messages.cloud.cegedim.com"
"""Base URL from the internet (documented)."""
DATACENTER_BASE_URL = "https://vortext.cloud.cegedim.com"
"""Base URL from inside cegedim.cloud datacenters (documented)."""

STATUS_PATH = "/status"  # documented
SMS_PATH = "/sms"  # seen in a public integration
SMS_DETAIL_PATH = "/sms/{message_id}"  # ASSUMED

ENV_USERNAME = "VORTEXT_USERNAME"
"""The environment variable read when the client is given no ``username``."""
ENV_PASSWORD = "VORTEXT_PASSWORD"
"""The environment variable read when the client is given no ``password``."""
ENV_BASE_URL = "VORTEXT_BASE_URL"
"""The environment variable read when the client is given no ``base_url``."""

RATE_LIMITED = 429
"""ASSUMED: a breached cap is answered 429, perhaps with Retry-After."""
NOT_PROCESSED_5XX = frozenset({503})
"""ASSUMED: a 503 means the request was not processed (overload, maintenance), so a send
answered 503 was not accepted and may be retried.  Every other 5xx answer to a send is
treated as "perhaps accepted".
"""
DEFAULT_RATE_LIMIT_PAUSE = 1.0
"""ASSUMED: how long every sender pauses after a 429 without a usable Retry-After."""

MAX_MESSAGE_LENGTH = 1600
"""ASSUMED: the longest message text sent, in characters (Unicode code points).

The API documents no limit.  1,600 characters is ten concatenated SMS of 160
characters, the limit other SMS gateways document; a longer text is refused before
anything is sent (:class:`InvalidRequestError`).  Change it per client with
``VortextClient(max_message_length=...)``.
"""
MAX_METADATA_SIZE = 8 * 1024
"""ASSUMED: the largest ``metadata``, in bytes of compact UTF-8 JSON (8 KiB).

The API documents ``metadata`` as the caller's own small object (its example holds
two short strings) and no limit; a larger one is refused before anything is sent.
"""
MAX_METADATA_DEPTH = 8
"""ASSUMED: how deep ``metadata`` may nest objects and arrays (the object itself is 1)."""
MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer every JSON reader holds exactly (JavaScript's
``Number.MAX_SAFE_INTEGER``, RFC 8259 section 6); larger ones in ``metadata`` are
refused, since the server may round them."""
