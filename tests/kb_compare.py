"""Compare two knowledge bases value for value: every kb table and every ind view."""
from __future__ import annotations

import math
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


def _sort_key(row: tuple) -> tuple[str, str]:
    """Floats coarsely rounded for ordering first, so that rows whose floats differ in the last bits pair up."""
    return repr(tuple(float(f"{v:.6g}") if isinstance(v, float) else v for v in row)), repr(row)


def _rows(con, schema: str, name: str, skip: set[str]) -> list[tuple]:
    columns = [c for c in con.sql(f'SELECT * FROM {schema}."{name}" LIMIT 0').columns if c not in skip]
    select = ", ".join(f'"{c}"' for c in columns)
    return sorted(con.sql(f'SELECT {select} FROM {schema}."{name}"').fetchall(), key=_sort_key)


def _same(a: tuple, b: tuple) -> bool:
    """Equal values; floats to a relative 1e-9 (DuckDB sums in parallel: a variance's last digits vary
    between two builds of the very same data)."""
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) or (x != x and y != y)
                                    if isinstance(x, float) and isinstance(y, float) else x == y
                                    for x, y in zip(a, b))


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
            if len(ra) != len(rb) or not all(map(_same, ra, rb)):
                only = [(x, y) for x, y in zip(ra, rb) if not _same(x, y)][:1]
                out[f"{schema}.{name}"] = f"{len(ra)} vs {len(rb)} rows, e.g. {only}"
        return out
    finally:
        con_a.close()
        con_b.close()
