"""Reading an answer's body as a stream, with a bound on what it decodes to.

The HTTP layer reads every answer through a :class:`BodyReader`, whichever library
carries it: raw chunks in (as they come off the socket, still compressed), decoded
bytes kept, and never more than ``limit`` of them.  Decoding is ours, not the
library's, because one compressed chunk of 64 KiB can inflate to 64 MiB in a single
call of some libraries' decoders: ``zlib`` is asked for at most what is still
allowed, so a gzip bomb costs what the limit allows and no more.

It knows no HTTP library; it sees a ``Content-Encoding`` value and bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Final, Protocol

__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "ERROR_BODY_BYTES",
    "BodyReader",
    "body_limit",
    "content_encoding",
]

DEFAULT_MAX_RESPONSE_BYTES: Final = 1024 * 1024
"""Decoded bytes of a 2xx answer kept at most; more makes the answer unreadable."""
ERROR_BODY_BYTES: Final = 2048
"""Decoded bytes kept of any other answer (a 4xx, a 5xx, a redirect): an excerpt."""
ACCEPT_ENCODING: Final = "gzip, deflate"
"""What we ask for: the encodings :class:`BodyReader` decodes (besides identity)."""


def body_limit(status_code: int, max_bytes: int) -> int:
    """Decoded bytes to read of an answer: all of a 2xx (up to ``max_bytes``), else an excerpt."""
    return max_bytes if 200 <= status_code < 300 else min(max_bytes, ERROR_BODY_BYTES)


def content_encoding(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``Content-Encoding`` of raw headers (repeated ones joined), or None."""
    found = [v.decode("latin-1") for n, v in raw_headers if n.lower() == b"content-encoding"]
    return ", ".join(found) if found else None


class _Decoder(Protocol):
    def decompress(self, data: bytes, max_length: int, /) -> bytes: ...


def _decoder(coding: str) -> _Decoder | None:
    if coding == "gzip" or coding == "x-gzip":
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if coding == "deflate":
        return _Deflate()
    return None


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped as the RFC says, or raw."""

    __slots__ = ("_inner", "_started")

    def __init__(self) -> None:
        self._inner = zlib.decompressobj()
        self._started = False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if not self._started and data:
            self._started = True
            if data[0] & 0x0F != 8:  # no zlib header: raw deflate
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inner.decompress(data, max_length)


class BodyReader:
    """Decodes one answer's ``Content-Encoding`` as it arrives, up to ``limit`` bytes.

    :meth:`feed` each raw chunk; it returns False once reading more is pointless (the
    limit is reached, or the body cannot be decoded): stop reading and drop the
    connection.  Then :meth:`finish`.  ``body`` holds the decoded bytes kept (at most
    ``limit``); ``complete`` is True when the whole body fit; ``problem`` says why not
    (over the limit, an unknown or broken encoding), or is None.

    Args:
        content_encoding: the answer's ``Content-Encoding`` header, or None.
        limit: decoded bytes to keep at most.
    """

    __slots__ = ("_chunks", "_decoders", "_left", "_limit", "complete", "problem")

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        self._limit = limit
        self._left = limit
        self._chunks: list[bytes] = []
        self.complete = True
        self.problem: str | None = None
        self._decoders: list[_Decoder] = []
        if content_encoding:
            # Applied in the order listed: decode in reverse.
            for coding in reversed(content_encoding.lower().split(",")):
                coding = coding.strip()
                if not coding or coding == "identity":
                    continue
                decoder = _decoder(coding)
                if decoder is None:
                    self._fail(f"the answer's Content-Encoding {coding!r} is not one we decode")
                    return
                self._decoders.append(decoder)

    @property
    def body(self) -> bytes:
        """The decoded bytes kept."""
        return b"".join(self._chunks)

    def feed(self, raw: bytes) -> bool:
        """Take one raw chunk; False when the caller should stop reading.

        Below the limit, zlib consumes every input byte, so nothing is left to flush
        when the body ends.
        """
        if not self.complete:
            return False
        data = raw
        try:
            last = len(self._decoders) - 1
            for stage, decoder in enumerate(self._decoders):
                # At most one byte more than fits: zlib stops there and keeps the rest
                # of its input, so a bomb never inflates past the limit.
                data = decoder.decompress(data, self._left + 1)
                if stage < last and len(data) > self._left:
                    # An inner encoding over the limit counts as over: conservative,
                    # and nobody sends ``gzip, gzip``.
                    self._over()
                    return False
        except zlib.error as error:
            self._fail(f"the answer's body could not be decoded: {error}")
            return False
        if len(data) > self._left:
            self._chunks.append(data[: self._left])
            self._left = 0
            self._over()
            return False
        if data:
            self._chunks.append(data)
            self._left -= len(data)
        return True

    def _over(self) -> None:
        self._fail(f"the answer's body is larger than the limit of {self._limit} bytes")

    def _fail(self, problem: str) -> None:
        self.complete = False
        self.problem = problem
