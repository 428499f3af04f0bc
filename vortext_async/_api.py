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
