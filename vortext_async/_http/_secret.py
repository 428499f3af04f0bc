"""Header values that never show in a ``repr``: the credential, on every path.

Error reporters such as Sentry record the local variables of every frame of a
traceback, by ``repr``.  The request's headers sit in many frames, ours and the HTTP
libraries' (aiohttp's ``CIMultiDict``, httpcore's list of byte pairs), and their
``repr`` shows each value.  So the ``Authorization`` value is made a ``str`` (for
aiohttp, which keeps the object it is given) or a ``bytes`` (for httpx and httpx2,
which keep a ``bytes`` value as is) whose ``repr`` is redacted.  Both are the
built-in types underneath: they go on the wire unchanged, at no cost per request.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["REDACTED", "SecretBytes", "SecretStr", "as_bytes_headers"]

REDACTED = "<redacted>"


class SecretStr(str):
    """A ``str`` whose ``repr`` hides it (``str()`` and the wire still have it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"'{REDACTED}'"


class SecretBytes(bytes):
    """A ``bytes`` whose ``repr`` hides it (the wire still has it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"b'{REDACTED}'"


def as_bytes_headers(headers: Mapping[str, str]) -> list[tuple[str, str | bytes]]:
    """``headers`` for httpx/httpx2: each :class:`SecretStr` as a :class:`SecretBytes`."""
    return [
        (name, SecretBytes(value.encode("latin-1")) if isinstance(value, SecretStr) else value)
        for name, value in headers.items()
    ]
