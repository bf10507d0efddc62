"""Is the TTK impact comparison's matching good enough to read? (knowledge-base spec v2)

Exact cells balance sex and the cell bands by construction, but not what lies inside a band,
and a treated person whose cell has no control drops out of the estimate. Evaluators in this
field read an estimate with care when a standardised mean difference after matching exceeds
0.1 or when many treated are unmatched: the asset check warns on either.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

SMD_LIMIT = 0.1         # |smd_after| above this: covariate not balanced
UNMATCHED_LIMIT = 0.10  # share of treated without an eligible control


@dataclass
class MatchingQuality:
    treated: int
    unmatched: int
    balance: list[dict]
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def unmatched_share(self) -> float | None:
        total = self.treated + self.unmatched
        return self.unmatched / total if total else None

    def balance_markdown(self) -> str:
        head = "| covariate | treated_mean | pool_mean | matched_mean | smd_before | smd_after |\n|---|---:|---:|---:|---:|---:|\n"
        cell = lambda v: "" if v is None else f"{v:.4g}"  # noqa: E731
        return head + "\n".join(
            f"| {b['covariate']} | " + " | ".join(cell(b[c]) for c in
                                                 ("treated_mean", "pool_mean", "matched_mean", "smd_before", "smd_after"))
            + " |" for b in self.balance)


#: the views the matching quality is read from
VIEWS = ("impact_estimates", "impact_balance")


def matching_quality(con: duckdb.DuckDBPyConnection) -> MatchingQuality:
    """Read ind.impact_estimates and ind.impact_balance and say what is weak."""
    return quality_of(*(con.sql(f"SELECT * FROM ind.{view}").to_arrow_table() for view in VIEWS))


def quality_of(estimates: pa.Table, balance_rows: pa.Table) -> MatchingQuality:
    """What is weak in the matching, from the rows of ind.impact_estimates and ind.impact_balance
    (the build reads them once, when it checks that every contract view answers)."""
    treated, unmatched = (pc.max(estimates.column(c)).as_py() for c in ("treated", "unmatched_treated"))
    balance = balance_rows.to_pylist()
    q = MatchingQuality(int(treated or 0), int(unmatched or 0), balance)
    for b in balance:
        if b["smd_after"] is not None and abs(b["smd_after"]) > SMD_LIMIT:
            q.problems.append(f"{b['covariate']} not balanced after matching (smd_after {b['smd_after']:.3f})")
    if q.unmatched_share is not None and q.unmatched_share > UNMATCHED_LIMIT:
        q.problems.append(f"{q.unmatched} of {q.treated + q.unmatched} treated have no eligible control "
                          f"({q.unmatched_share:.0%})")
    return q
