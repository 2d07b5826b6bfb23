"""Which characters user-chosen text may carry: names, emails and certificate-filter values
are shown to other people (consoles, audit logs, the gateway's decisions), so nothing in them
may hide, reorder or cut what is displayed or stored."""

from __future__ import annotations

import unicodedata

# Joiners needed to spell some scripts (Persian, Indic) and emoji sequences.
_ALLOWED_FORMAT_CHARACTERS = frozenset({"\u200c", "\u200d"})
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def unsafe_character(value: str, *, allow: str = "") -> str | None:
    """What is wrong with the first character of ``value`` that text shown to people must not
    carry, or None: lone surrogates (not storable as UTF-8), control characters (NUL, line
    breaks, escapes), bidirectional-text controls (which reorder what is shown), other
    invisible formatting characters, line and paragraph separators and noncharacters.
    Characters in ``allow`` (e.g. ``"\\n"`` for free text) pass."""
    for char in value:
        if char in allow:
            continue
        category = unicodedata.category(char)
        code = f"U+{ord(char):04X}"
        if category == "Cs":
            return f"a lone surrogate ({code})"
        if category == "Cc":
            return f"a control character ({code})"
        if char in _BIDI_CONTROLS:
            return f"a bidirectional-text control ({code})"
        if category in ("Cf", "Zl", "Zp") and char not in _ALLOWED_FORMAT_CHARACTERS:
            return f"an invisible formatting character ({code})"
        if (0xFDD0 <= ord(char) <= 0xFDEF) or (ord(char) & 0xFFFE) == 0xFFFE:
            return f"a noncharacter ({code})"
    return None
