"""National pooling of regional aggregate packages (``tyokyky pool``).

Verifies the packages (checksums, format and spec version, no region twice, no key shared by two
regions, the same indicator definitions), then builds ``OUT/national.duckdb``:

* ``regional.<view>`` — every region's rows of the view, with a leading ``region`` column;
* ``nat.<view>`` — a view over it: the regional rows plus the national rows
  (``region = 'national'``), each figure pooled by its rule in ``pipelines/pooling.yaml``, as SQL
  the evaluators can read (``SELECT sql FROM duckdb_views() WHERE schema_name = 'nat'``);
* ``nat.regions`` — one row per package: region, title, controller, as_of, fingerprints.

Counts and sums add; means and shares are re-derived from pooled numerators and denominators;
medians come from the regions' summed distributions (``ind.median_distributions``); the impact
estimates pool by inverse-variance weighting. The file is built aside and swapped in when complete.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.aggregates import AggregateError, Package, load_spec, read_package, rule
from pipelines.regions import NATIONAL
from schemas.casting import lit, q

DB_FILE = "national.duckdb"


@dataclass
class PoolResult:
    path: Path
    regions: list[str]
    views: int


def _sum(c: str) -> str:
    return f"sum({q(c)})"


def national_expression(column: str, spec, keys: list[str], view: str = "") -> str:
    """SQL for one column of the national rows, over ``regional.<view>`` grouped by the keys."""
    kind, arg = rule(spec)
    c = q(column)
    if kind == "count" or kind == "sum":
        return _sum(column)
    if kind in ("max", "min"):
        return f"{kind}({c})"
    if kind == "same":
        return f"CASE WHEN count(DISTINCT {c}) = 1 AND count({c}) = count(*) THEN any_value({c}) END"
    if kind == "ratio":
        num, den = arg
        return f"CASE WHEN {_sum(den)} > 0 THEN {_sum(num)}::DOUBLE / {_sum(den)} END"
    if kind == "mean":
        w = q(arg)
        return (f"sum({c} * {w}) FILTER (WHERE {c} IS NOT NULL) "
                f"/ nullif(sum({w}) FILTER (WHERE {c} IS NOT NULL), 0)")
    if kind == "share_of":
        within = spec.get("within", [])
        over = f"PARTITION BY {', '.join(q(k) for k in within)}" if within else ""
        return f"{_sum(arg)}::DOUBLE / nullif(sum({_sum(arg)}) OVER ({over}), 0)"
    if kind == "rank":
        return f"row_number() OVER (ORDER BY {', '.join(arg)})"
    if kind == "ivw":
        weight = "1 / (se * se)"
        att = f"(sum(att * {weight}) FILTER (WHERE se > 0) / sum({weight}) FILTER (WHERE se > 0))"
        se = f"sqrt(1 / sum({weight}) FILTER (WHERE se > 0))"
        return {"att": att, "se": se, "ci_low": f"{att} - 1.96 * {se}", "ci_high": f"{att} + 1.96 * {se}"}[arg]
    if kind == "median" and len(keys) == 1:  # from the summed distributions (ind.median_distributions)
        return (f"(SELECT m.median FROM regional.pooled_medians m WHERE m.indicator = {lit(view)} "
                f"AND m.measure = {lit(column)} AND m.key IS NOT DISTINCT FROM CAST({q(keys[0])} AS VARCHAR))")
    return "NULL"  # none, text: not poolable from the regional rows


def nat_view_sql(view: str, vspec: dict, types: dict[str, str]) -> str:
    keys = vspec["keys"]
    regional = f"regional.{q(view)}"
    cols = [*keys, *vspec["columns"]]
    national = ", ".join(
        [f"{lit(NATIONAL)} AS region", *(q(k) for k in keys),
         *(f"CAST({national_expression(c, s, keys, view)} AS {types[c]}) AS {q(c)}"
           for c, s in vspec["columns"].items())])
    group = f" GROUP BY {', '.join(q(k) for k in keys)}" if keys else ""
    order = ", ".join(["region = 'national'", "region", *(q(k) for k in keys)])
    return (f"CREATE VIEW nat.{q(view)} AS SELECT * FROM (\n"
            f"  SELECT region, {', '.join(q(c) for c in cols)} FROM {regional}\n"
            f"  UNION ALL\n"
            f"  SELECT {national} FROM {regional}{group}\n) ORDER BY {order}")


def verify(packages: list[Package]) -> None:
    """No region twice, no key shared by two regions, the same indicator definitions, no public package."""
    seen: dict[str, Path] = {}
    keys: dict[str, str] = {}
    for p in packages:
        if p.manifest.get("public"):
            raise AggregateError(f"{p.path} is a public package (rounded and suppressed): pooling needs the "
                                 "evaluators' packages, exported without --public")
        if p.region in seen:
            raise AggregateError(f"region {p.region} is given twice ({seen[p.region]} and {p.path}): give one "
                                 "package per region")
        seen[p.region] = p.path
        key = p.manifest["build"]["key_fingerprint"]
        if key in keys:
            raise AggregateError(f"regions {keys[key]} and {p.region} were built with the same key: each region "
                                 "needs its own key_file, or their pseudonyms could be linked")
        keys[key] = p.region
    digests = {p.manifest["build"]["definitions_sha256"] for p in packages}
    if len(digests) > 1:
        raise AggregateError("the packages were built with different indicator definitions ("
                             + ", ".join(f"{p.region}: {p.manifest['build']['pipeline_version']}" for p in packages)
                             + "): build every region with the same tyokyky version and export again")


@contextmanager
def building_aside(target: Path):
    """A connection to ``TARGET.building``, renamed over ``target`` only when the block completes."""
    building = target.with_name(target.name + ".building")
    building.unlink(missing_ok=True)
    con = duckdb.connect(str(building))
    try:
        yield con
        con.execute("CHECKPOINT")
    finally:
        con.close()
        if sys.exc_info()[0] is not None:
            building.unlink(missing_ok=True)
    os.replace(building, target)


POOLED_MEDIANS = """CREATE VIEW regional.pooled_medians AS
WITH d AS (SELECT indicator, key, measure, days, sum(n) AS n FROM regional.median_distributions GROUP BY ALL),
c AS (
    SELECT *, sum(n) OVER (PARTITION BY indicator, key, measure ORDER BY days) AS upto,
           sum(n) OVER (PARTITION BY indicator, key, measure) AS total
    FROM d
)
SELECT indicator, key, measure,
       (min(days) FILTER (WHERE upto >= (total + 1) // 2) + min(days) FILTER (WHERE upto >= total // 2 + 1)) / 2.0
           AS median
FROM c GROUP BY indicator, key, measure"""


def pooled_medians(con) -> None:
    """regional.pooled_medians: the median of every (indicator, key, measure) over all regions, from
    the regions' summed distributions of whole days — the value median() gives over all values (the
    mean of the two middle ones for an even count)."""
    con.execute(POOLED_MEDIANS)


def _regional_table(con, packages: list[Package], view: str) -> None:
    """regional.<view>: every package's rows of the view, with a leading region column."""
    parts = []
    for i, p in enumerate(packages):
        con.register(f"pkg_{i}_{view}", p.table(view))
        parts.append(f"SELECT {lit(p.region)} AS region, * FROM pkg_{i}_{view}")
    con.execute(f"CREATE TABLE regional.{q(view)} AS " + " UNION ALL BY NAME ".join(parts))
    for i in range(len(packages)):
        con.unregister(f"pkg_{i}_{view}")


def _nat_view(con, view: str, vspec: dict) -> None:
    """nat.<view> over regional.<view>: the regional rows and the national ones, documented."""
    types = dict(con.sql("SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'regional' "
                         f"AND table_name = {lit(view)}").fetchall())
    con.execute(nat_view_sql(view, vspec, types))
    how = "exactly as one build over all regions' data would" if vspec.get("exact", True) else \
        "from the regional estimates (matching stays within each region)"
    about = (f"ind.{view} of every region (region = its name) and the national rows (region = national), "
             f"pooled {how}; rules in pipelines/pooling.yaml")
    con.execute(f"COMMENT ON VIEW nat.{q(view)} IS {lit(about)}")


def pool(package_dirs: list[Path], out: Path) -> PoolResult:
    """Verify the packages and build ``OUT/national.duckdb``; returns its path and regions."""
    spec = load_spec()
    if not package_dirs:
        raise AggregateError("no packages given: name the folders written by 'tyokyky export-aggregates'")
    packages = [read_package(Path(p), spec) for p in package_dirs]
    verify(packages)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / DB_FILE
    with building_aside(target) as con:
        con.execute("CREATE SCHEMA regional; CREATE SCHEMA nat")
        con.execute("""CREATE TABLE nat.regions (region VARCHAR, title VARCHAR, controller VARCHAR,
                       municipalities VARCHAR[], as_of DATE, built_at TIMESTAMP, key_fingerprint VARCHAR,
                       pipeline_version VARCHAR, package VARCHAR)""")
        for p in packages:
            r, b = p.manifest["region"], p.manifest["build"]
            con.execute("INSERT INTO nat.regions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [r["name"], r.get("title"), r.get("controller"), r.get("municipalities"), b.get("as_of"),
                         b.get("built_at"), b["key_fingerprint"][:12], b.get("pipeline_version"), str(p.path)])
        for view in spec["views"]:
            _regional_table(con, packages, view)
        pooled_medians(con)
        for view, vspec in spec["views"].items():
            _nat_view(con, view, vspec)
    return PoolResult(target, [p.region for p in packages], len(spec["views"]))
