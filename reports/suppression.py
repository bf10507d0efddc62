"""Small-cell suppression for everything published outside the evaluator group.

Primary: a count from 1 to threshold−1 is shown as ``<5``; a share, mean, median or
sum computed from fewer than ``threshold`` persons is not shown; a share whose
numerator is a small count is not shown either (with its denominator published,
it would give the count away).

Secondary: where cells add up to a published total, one suppressed cell could be
recovered by subtraction, so the smallest other non-zero cell is suppressed too.
"""
from __future__ import annotations

from dataclasses import dataclass

from reports import formatting

HIDDEN = "–"


@dataclass(frozen=True)
class Suppressor:
    threshold: int = 5

    @property
    def small(self) -> str:
        return f"<{self.threshold}"

    def is_small(self, n) -> bool:
        return n is not None and 0 < int(n) < self.threshold

    def count(self, n) -> str:
        """A person or row count: 0 and ≥ threshold shown, 1 … threshold−1 as '<5'."""
        if n is None:
            return HIDDEN
        return self.small if self.is_small(n) else formatting.number(int(n))

    def share(self, numerator, denominator, decimals: int = 1) -> str:
        if denominator is None or int(denominator) < self.threshold or self.is_small(numerator):
            return HIDDEN
        return formatting.percent(int(numerator) / int(denominator), decimals)

    def statistic(self, value, persons, decimals: int = 1, unit: str = "") -> str:
        """A mean, median or sum over ``persons``: hidden below the threshold."""
        if value is None or persons is None or int(persons) < self.threshold:
            return HIDDEN
        text = formatting.number(value, decimals)
        return f"{text} {unit}".strip() if unit else text

    def euros(self, value, persons) -> str:
        if value is None or persons is None or int(persons) < self.threshold:
            return HIDDEN
        return formatting.euros(value)

    def cells(self, values: list[int], total_published: bool = True) -> list[bool]:
        """Which of the cells (that add up to a published total) must be hidden."""
        hide = [self.is_small(v) for v in values]
        if total_published and sum(hide) == 1:
            candidates = [i for i, v in enumerate(values) if not hide[i] and v > 0]
            if not candidates:
                candidates = [i for i in range(len(values)) if not hide[i]]
            if candidates:
                hide[min(candidates, key=lambda i: values[i])] = True
        return hide

    def row(self, values: list[int], total_published: bool = True) -> list[str]:
        """Cells of a row with a published total, primary and secondary suppression applied."""
        hide = self.cells(values, total_published)
        return [self.small if h else formatting.number(int(v)) for v, h in zip(values, hide)]

    def plot_values(self, values: list[int], total_published: bool = True) -> list[int]:
        """Values safe to draw: hidden cells are drawn as 0 (and labelled '<5' by the caller)."""
        hide = self.cells(values, total_published)
        return [0 if h else int(v) for v, h in zip(values, hide)]
