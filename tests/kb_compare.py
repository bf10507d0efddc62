"""Compare two knowledge bases value for value: every kb table and every ind view."""
from __future__ import annotations

from pathlib import Path

import duckdb

#: what differs between two builds of the same data by construction: when each was built, and the
#: cache signatures (paths and modification times of that data directory's staging files)
BUILD_SPECIFIC = {("kb", "build_info"): {"built_at"}, ("kb", "build_inputs"): {"signature"}}


def objects(con) -> list[tuple[str, str]]:
    return sorted(con.sql("""
        SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN ('kb', 'ind')
        UNION ALL
        SELECT schema_name, view_name FROM duckdb_views() WHERE schema_name IN ('kb', 'ind') AND NOT internal
    """).fetchall())


def _value(v):
    """Floats to 12 significant digits: DuckDB sums in parallel, so the last bits of a mean vary."""
    return float(f"{v:.12g}") if isinstance(v, float) else v


def _rows(con, schema: str, name: str, skip: set[str]) -> list[tuple]:
    columns = [c for c in con.sql(f'SELECT * FROM {schema}."{name}" LIMIT 0').columns if c not in skip]
    select = ", ".join(f'"{c}"' for c in columns)
    return sorted((tuple(map(_value, r)) for r in con.sql(f'SELECT {select} FROM {schema}."{name}"').fetchall()),
                  key=repr)


def differences(a: Path, b: Path, skip: dict[tuple[str, str], set[str]] | None = None) -> dict[str, str]:
    """``{schema.object: what differs}``; empty when both hold the same objects with the same rows
    (columns in ``skip`` and :data:`BUILD_SPECIFIC` left out)."""
    skip = {**BUILD_SPECIFIC, **(skip or {})}
    con_a, con_b = duckdb.connect(str(a), read_only=True), duckdb.connect(str(b), read_only=True)
    try:
        names_a, names_b = objects(con_a), objects(con_b)
        out = {f"{s}.{n}": "missing in one" for s, n in set(names_a) ^ set(names_b)}
        for schema, name in names_a:
            if (schema, name) not in names_b:
                continue
            cols = skip.get((schema, name), set())
            ra, rb = _rows(con_a, schema, name, cols), _rows(con_b, schema, name, cols)
            if ra != rb:
                only = [r for r in ra if r not in rb][:1] + [r for r in rb if r not in ra][:1]
                out[f"{schema}.{name}"] = f"{len(ra)} vs {len(rb)} rows, e.g. {only}"
        return out
    finally:
        con_a.close()
        con_b.close()
