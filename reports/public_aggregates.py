"""The public aggregate package (``tyokyky export-aggregates --public``): every cell of every
exported view published by its pooling rule (``pipelines/pooling.yaml``) through
:class:`reports.disclosure.Disclosure`, and the package recorded in the release log
(``DATA/releases``) before it is published, like the steering-group PDF.

What does not pass is null: counts 1 … threshold−1 suppressed (with the secondary cell of a row
whose parts add up to a published total), other counts rounded; shares, means, medians, sums and
impact estimates only from at least ``threshold`` persons. Descriptive columns (keys, text) are
published as they are.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from pipelines.aggregates import MANIFEST, ExportResult, collect, load_spec, rule, write
from reports import release_log
from reports.disclosure import SUPPRESSED, Disclosure, Rules

OUTPUT = "aggregates_public"
AS_IS = {"same", "rank", "text"}


def rules_of(params: dict) -> Rules:
    return Rules(int(params["suppression_threshold"]), int(params["rounding_base"]), bool(params["midpoint_rounding"]))


def _shown(sup: Disclosure, cell: str) -> bool:
    return sup.cells[cell].status != SUPPRESSED


def _group_totals(rows: list[dict], column: str, within: list[str]) -> dict:
    totals: dict = {}
    for r in rows:
        key = tuple(r[k] for k in within)
        totals[key] = totals.get(key, 0) + (r[column] or 0)
    return totals


def publish_row(sup: Disclosure, view: str, vspec: dict, row: dict, totals: dict) -> dict:
    """One row as published: each cell recorded in ``sup`` and shown, rounded or null."""
    keys, columns = vspec["keys"], vspec["columns"]
    rid = "/".join(f"{k}={row[k]}" for k in keys) or "all"
    cell = {c: f"{view}/{rid}/{c}" for c in columns}
    parts: dict[str, list[str]] = {}
    for c, s in columns.items():
        kind, arg = rule(s)
        if kind == "count" and arg:
            parts.setdefault(arg, []).append(c)
    for group in parts.values():  # parts of a published total: primary and secondary suppression
        sup.row([int(row[c] or 0) for c in group], [cell[c] for c in group])
    out = {k: row[k] for k in keys}
    for c, s in columns.items():
        kind, arg = rule(s)
        value = row[c]
        if kind == "count":
            if not arg:
                sup.count(value, cell[c])
            out[c] = sup.rules.round(int(value)) if value is not None and _shown(sup, cell[c]) else None
            continue
        if kind in AS_IS or (kind in ("none", "max", "min") and arg is None):
            out[c] = value
            continue
        if kind == "ratio":
            sup.share(row[arg[0]], row[arg[1]], cell[c])
        elif kind == "share_of":
            sup.share(row[arg], totals[c][tuple(row[k] for k in s.get("within", []))], cell[c])
        elif kind == "sum":
            sup.euros(value, row[arg], cell[c])
        else:  # mean, median, max, min, none over persons; ivw over its n
            persons = row[s["n"]] if kind == "ivw" else row[arg]
            sup.statistic(value, persons, cell[c])
        out[c] = value if _shown(sup, cell[c]) else None
    return out


def publish(tables: dict[str, pa.Table], spec: dict, params: dict) -> tuple[Disclosure, dict[str, pa.Table]]:
    sup = Disclosure(rules_of(params))
    published = {}
    for view, table in tables.items():
        vspec = spec["views"][view]
        rows = table.to_pylist()
        totals = {c: _group_totals(rows, rule(s)[1], s.get("within", []))
                  for c, s in vspec["columns"].items() if rule(s)[0] == "share_of"}
        published[view] = pa.Table.from_pylist([publish_row(sup, view, vspec, r, totals) for r in rows],
                                               schema=table.schema)
    return sup, published


def export_public(data: Path, out: Path) -> ExportResult:
    """Write the public package of the region in ``data`` and record its release in DATA/releases."""
    c = collect(data, public=True)
    sup, c.tables = publish(c.tables, load_spec(), c.params)
    releases = Path(data) / "releases"

    def record(manifest: Path) -> Path:
        previous = release_log.previous_release(releases, OUTPUT)
        flags = release_log.differencing(previous, sup.cells, sup.threshold)
        return release_log.record(releases, Path(out) / MANIFEST, manifest, OUTPUT,
                                  {**c.info, "region": c.region["name"]}, c.params, sup, flags, previous)

    return write(c, out, sup, record)
