"""Screen partner-controlled text (names, free-text fields, messages) for identity codes.

Anything that looks like an identity code is replaced by :data:`MARKER`, whether the
code is valid or not and whatever its century sign or letter case: a mistyped code is
still somebody's code. The pattern is deliberately wide (no word boundaries), so that a
code glued to other text (``ttk_010180-123A.csv``, a fixed-width record) is caught too.
"""
from __future__ import annotations

import re

MARKER = "[tunniste poistettu]"
#: DDMMYY, a century sign (any case), NNN, a check character (any case)
PATTERN = r"[0-9]{6}[-+A-Fa-fU-Yu-y][0-9]{3}[0-9A-Ya-y]"
_CODE = re.compile(PATTERN)


def contains_code(text: str | None) -> bool:
    return bool(text) and _CODE.search(text) is not None


def redact(text: str | None) -> str | None:
    """``text`` with every identity-code-like part replaced by the marker."""
    return _CODE.sub(MARKER, text) if text else text


def redact_count(text: str | None) -> tuple[str | None, int]:
    """``(redacted text, number of codes replaced)``."""
    if not text:
        return text, 0
    return _CODE.subn(MARKER, text)
