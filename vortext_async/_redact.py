"""Secrets out of URLs, before a URL is shown in a repr, a log record or an error.

One function for every URL the package shows: the Vortext ``base_url``, a Redis URL,
a PostgreSQL journal URL, a proxy URL.  A URL may carry a secret in two places: the
password of its user part (``scheme://user:password@host``, or without ``//`` as
people mistype it) and a query parameter (``?password=``, libpq's and redis-py's
form, or a ``token=``/``key=`` a gateway puts there).  Both become ``***``; the rest is
kept, so the message still says which server.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

__all__ = ["redact_url"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|auth|sig|credential", re.IGNORECASE)
_HIDDEN = "***"


def redact_url(url: str) -> str:
    """``url`` with the password of its user part and its secret query values as ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            name, colon, _ = user.partition(":")
            netloc = f"{name}{colon and ':' + _HIDDEN}@{host}"
        elif "@" in url and not netloc:
            # No ``//``: ``user:password@host`` parses as a scheme and a path, so all
            # that precedes the ``@`` goes.
            scheme = _SCHEME.match(url)
            return f"{scheme.group() if scheme else ''}{_HIDDEN}@{url.rpartition('@')[2]}"
        query = parts.query
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_NAME.search(name) for name, _ in pairs):
            query = "&".join(
                f"{quote(k)}={_HIDDEN if _SECRET_NAME.search(k) else quote(v)}" for k, v in pairs
            )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<a URL that cannot be parsed>"
