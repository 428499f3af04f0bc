"""Text from files, servers and users, made safe to print on a terminal.

A key, a message or a server's answer may hold escape sequences (``\\x1b[2J`` clears
the screen, ``\\x1b]52;...`` writes the clipboard, C1 ``\\x9b`` is a CSI on some
terminals) or bidirectional overrides that make a line read differently than it is.
:func:`printable` shows every such character escaped instead, as Python would
(``\\x1b``, ``\\n``, ``\\u202e``), so what is printed is what the data holds.
"""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = ["printable"]

_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SHOWN_ESCAPED: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
"""Unicode categories never printed as is: control (C0, DEL, C1), format (bidi
overrides, zero-width joiners), line and paragraph separators, surrogates, private
use and unassigned code points."""


_KEPT: Final = frozenset({"\u200c", "\u200d"})
"""Zero-width (non-)joiners: format characters that only shape emoji and scripts."""


def _escaped(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every control or invisible formatting character shown escaped."""
    if text.isprintable():  # the common case: nothing to do (spaces count as printable)
        return text
    return "".join(
        _escaped(char)
        if unicodedata.category(char) in _SHOWN_ESCAPED and char not in _KEPT
        else char
        for char in text
    )
