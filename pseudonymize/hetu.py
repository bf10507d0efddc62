"""One identity code: normalise, validate, derive birth year / sex / temporary flag.

Validation is python-stdnum's (``stdnum.fi.hetu``, which knows the 2023 century
signs). stdnum only says *that* a code is invalid; partners need to know *why*, so
the reason is classified here in the same order as stdnum checks the parts.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from stdnum.exceptions import ValidationError
from stdnum.fi import hetu as _stdnum_hetu

#: century sign -> first year of the century (spec: partner-exports.md)
CENTURY_SIGNS: dict[str, int] = {"+": 1800}
CENTURY_SIGNS.update(dict.fromkeys("-YXWVU", 1900))
CENTURY_SIGNS.update(dict.fromkeys("ABCDEF", 2000))

CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"

# Reasons, shared with the vectorised validator so both speak the same words.
MISSING = "missing identity code"
BAD_LENGTH = "bad length"
BAD_CHARACTERS = "bad characters"
UNKNOWN_CENTURY = "unknown century sign"
IMPOSSIBLE_DATE = "impossible date"
RESERVED = "reserved individual number"
BAD_CHECK = "bad check character"


@dataclass(frozen=True)
class HetuInfo:
    """What may be kept of a valid code besides its pseudonym (never the birth date)."""

    code: str  # normalised code: for hashing only, never to be written anywhere
    birth_year: int
    sex: str  # "M" / "F"
    temporary: bool

    def __repr__(self) -> str:  # keep the code out of logs and tracebacks
        return f"HetuInfo(birth_year={self.birth_year}, sex={self.sex!r}, temporary={self.temporary})"


def normalize(raw: str | None) -> str | None:
    """Strip surrounding white space and upper-case, as partners are sloppy."""
    if raw is None:
        return None
    return raw.strip().upper()


def invalid_reason(code: str | None) -> str | None:
    """The reason a normalised code is invalid, or None when it is valid."""
    if code is None or code == "":
        return MISSING
    if len(code) != 11:
        return BAD_LENGTH
    digits = code[0:6] + code[7:10]
    if not (digits.isascii() and digits.isdigit()):
        return BAD_CHARACTERS
    sign = code[6]
    if sign not in CENTURY_SIGNS:
        return UNKNOWN_CENTURY
    day, month, year = int(code[0:2]), int(code[2:4]), CENTURY_SIGNS[sign] + int(code[4:6])
    try:
        datetime.date(year, month, day)
    except ValueError:
        return IMPOSSIBLE_DATE
    if int(code[7:10]) < 2:
        return RESERVED
    if CHECK_CHARACTERS[int(digits) % 31] != code[10]:
        return BAD_CHECK
    # Belt and braces: stdnum has the last word on validity.
    try:
        _stdnum_hetu.validate(code, allow_temporary=True)
    except ValidationError:
        return BAD_CHARACTERS
    return None


def check(raw: str | None) -> HetuInfo:
    """Validate one raw code; raise ValueError(reason) — without the code — when invalid."""
    code = normalize(raw)
    reason = invalid_reason(code)
    if reason is not None:
        raise ValueError(reason)
    individual = int(code[7:10])
    return HetuInfo(
        code=code,
        birth_year=CENTURY_SIGNS[code[6]] + int(code[4:6]),
        sex="M" if individual % 2 else "F",
        temporary=individual >= 900,
    )
