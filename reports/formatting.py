"""Finnish number and date formats: 1 234,5 · 31.12.2022 · 12,3 %."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal


def number(value, decimals: int = 0) -> str:
    """1234.5 -> '1 234,5' (space as thousands separator, decimal comma)."""
    if value is None:
        return "–"
    text = f"{float(value):,.{decimals}f}" if isinstance(value, (float, Decimal)) or decimals else f"{int(value):,}"
    return text.replace(",", " ").replace(".", ",").replace("-", "−")


def euros(value, decimals: int = 0) -> str:
    return "–" if value is None else f"{number(value, decimals)} €"


def percent(share, decimals: int = 1) -> str:
    """0.123 -> '12,3 %'."""
    return "–" if share is None else f"{number(float(share) * 100, decimals)} %"


def date(value: dt.date | dt.datetime | None) -> str:
    """2022-12-31 -> '31.12.2022'."""
    return "–" if value is None else f"{value.day}.{value.month}.{value.year}"


def period(label: str) -> str:
    """'2022-12' -> '12/2022'."""
    y, m = label.split("-")
    return f"{int(m)}/{y}"
