"""Disclosure control: the one door every published number goes through.

The ``ind`` views stay exact; these rules apply only to what is published.

Suppression (primary): a count from 1 to threshold−1 is shown as ``<5``; a share, mean,
median or sum computed from fewer than ``threshold`` persons is not shown; a share whose
numerator is a small count is not shown either (with its denominator published, it would
give the count away). Shares and means are computed from the exact numbers.

Suppression (secondary): where cells add up to a published total, one suppressed cell
could be recovered by subtraction, so the smallest other non-zero cell is suppressed too.

Rounding: every count that is shown is rounded, totals independently of their parts, so
that two releases a few persons apart cannot be subtracted from each other. Two rules:

* nearest multiple of ``rounding_base`` (default 5, halves up; a non-zero count is never
  shown as 0) — the "round all counts to the nearest 5 after suppression" rule OpenSAFELY
  adopted against secondary disclosure (opensafely.org, "Updated disclosure control
  guidance"; docs.opensafely.org/sdc);
* ``midpoint_rounding`` (OpenSAFELY's "midpoint 6 rounding", their R helper
  ``roundmid_any(x, to = 6) = ceiling(x / 6) * 6 − floor(6 / 2) · (x ≠ 0)``): a count is
  reported as the midpoint of its band of ``rounding_base`` — with base 6, 1–6 → 3,
  7–12 → 9, 13–18 → 15 — which removes the bias of always rounding one way. OpenSAFELY
  pairs it with redacting counts of 7 or fewer, i.e. ``threshold: 8``.

Each published number is recorded as a cell (a stable id such as
``employment_outcomes/window=12/employed_open_market``) with how it was shown, for the
release log (:mod:`reports.release_log`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from reports import formatting

HIDDEN = "–"
SHOWN, ROUNDED, SUPPRESSED = "exact", "rounded", "suppressed"


@dataclass(frozen=True)
class Rules:
    threshold: int = 5
    rounding_base: int = 5      # 0 or 1: no rounding
    midpoint_rounding: bool = False

    def round(self, n: int) -> int:
        """A count as published (suppression aside)."""
        b = int(self.rounding_base)
        if n == 0 or b <= 1:
            return n
        if self.midpoint_rounding:
            return -(-n // b) * b - b // 2
        return max(b, (n + b // 2) // b * b)

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "rounding_base": self.rounding_base,
                "midpoint_rounding": bool(self.midpoint_rounding)}


@dataclass(frozen=True)
class Cell:
    """How one published number was shown; ``persons`` is the exact count behind it (a count,
    or the persons a share or mean is computed from) and never goes into the published log."""
    status: str
    released: str
    persons: int | None


@dataclass
class Disclosure:
    rules: Rules = field(default_factory=Rules)
    cells: dict[str, Cell] = field(default_factory=dict)

    @property
    def threshold(self) -> int:
        return self.rules.threshold

    @property
    def small(self) -> str:
        return f"<{self.threshold}"

    def is_small(self, n) -> bool:
        return n is not None and 0 < int(n) < self.threshold

    def _record(self, cell: str, status: str, released: str, persons) -> str:
        persons = None if persons is None else int(persons)
        new = Cell(status, released, persons)
        old = self.cells.setdefault(cell, new)
        if old != new:
            raise ValueError(f"published cell {cell!r} shown twice with different values")
        return released

    # ------------------------------------------------------------------ counts
    def _count(self, n: int, hide: bool, cell: str) -> str:
        if hide:
            return self._record(cell, SUPPRESSED, self.small, n)
        shown = self.rules.round(n)
        return self._record(cell, SHOWN if shown == n else ROUNDED, formatting.number(shown), n)

    def count(self, n, cell: str) -> str:
        """A person or row count: 1 … threshold−1 as '<5', anything else rounded."""
        if n is None:
            return self._record(cell, SUPPRESSED, HIDDEN, None)
        return self._count(int(n), self.is_small(n), cell)

    def cells_hidden(self, values: list[int], total_published: bool = True) -> list[bool]:
        """Which of the cells (that add up to a published total) must be hidden."""
        hide = [self.is_small(v) for v in values]
        if total_published and sum(hide) == 1:
            candidates = [i for i, v in enumerate(values) if not hide[i] and v > 0]
            if not candidates:
                candidates = [i for i in range(len(values)) if not hide[i]]
            if candidates:
                hide[min(candidates, key=lambda i: values[i])] = True
        return hide

    def row(self, values: list[int], cells: list[str], total_published: bool = True) -> list[str]:
        """Cells of a row with a published total: primary and secondary suppression, then rounding."""
        hide = self.cells_hidden(values, total_published)
        return [self._count(int(v), h, c) for v, h, c in zip(values, hide, cells)]

    def plot_value(self, n) -> int:
        """A count safe to draw: suppressed as 0 (the caller labels it), otherwise rounded."""
        return 0 if n is None or self.is_small(n) else self.rules.round(int(n))

    def plot_values(self, values: list[int], total_published: bool = True) -> list[int]:
        hide = self.cells_hidden(values, total_published)
        return [0 if h else self.rules.round(int(v)) for v, h in zip(values, hide)]

    # ------------------------------------------------------------------ derived from exact numbers
    def _derived(self, text: str | None, persons, cell: str) -> str:
        if text is None:
            return self._record(cell, SUPPRESSED, HIDDEN, persons)
        return self._record(cell, SHOWN, text, persons)

    def share(self, numerator, denominator, cell: str, decimals: int = 1) -> str:
        hide = denominator is None or int(denominator) < self.threshold or self.is_small(numerator)
        text = None if hide else formatting.percent(int(numerator) / int(denominator), decimals)
        return self._derived(text, denominator, cell)

    def statistic(self, value, persons, cell: str, decimals: int = 1, unit: str = "") -> str:
        """A mean, median or sum over ``persons``: hidden below the threshold."""
        text = None
        if value is not None and persons is not None and int(persons) >= self.threshold:
            text = formatting.number(value, decimals)
            text = f"{text} {unit}".strip() if unit else text
        return self._derived(text, persons, cell)

    def euros(self, value, persons, cell: str) -> str:
        ok = value is not None and persons is not None and int(persons) >= self.threshold
        return self._derived(formatting.euros(value) if ok else None, persons, cell)
