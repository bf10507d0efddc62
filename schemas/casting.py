"""Typing and row validation of a read delivery, in DuckDB, generated from its contract.

Input: the reader's text table with the identity column already replaced by the
pseudonymisation columns (DuckDB never sees a raw identity code). Output: the typed
rows that load, and the quarantined ones with the first reason that applies.
Reasons name columns and rules, never values: a value could be an identity code
typed into the wrong column.
"""
from __future__ import annotations

import duckdb
import pyarrow as pa

from schemas.contract import DATE_FORMATS, Column, Contract

DATE_RANGE = ("1900-01-01", "2099-12-31")
HUMAN_FORMATS = {"fi": "d.m.yyyy", "iso": "yyyy-mm-dd"}


def q(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """Quote a string literal for DuckDB (contract values only, never data)."""
    return "'" + str(value).replace("'", "''") + "'"


def raw_name(contract: Contract, column: Column) -> str:
    """Raw text columns are renamed r0, r1, … so typed names never collide with them."""
    return f"r{contract.columns.index(column)}"


def trimmed_name(contract: Contract, column: Column) -> str:
    """Trimmed raw text, NULL when empty, is t0, t1, …: trimmed once, read by every check."""
    return f"t{contract.columns.index(column)}"


def parsed_name(contract: Contract, column: Column) -> str:
    """Parsed (not yet range-checked) values are p0, p1, …: each parse runs once per row."""
    return f"p{contract.columns.index(column)}"


def digits_sql(expr: str, fewest: int, most: int | None = None) -> str:
    """``expr`` is ``fewest`` to ``most`` ASCII digits, as GLOB patterns: a regular expression made
    a quarter of the checks of a Kela delivery, these a tenth."""
    return "(" + " OR ".join(f"{expr} GLOB '{'[0-9]' * n}'" for n in range(fewest, (most or fewest) + 1)) + ")"


def _column_sql(contract: Contract, c: Column) -> tuple[str, str, list[tuple[str, str]]]:
    """(parse expression over the raw text, typed expression over the parsed value,
    (condition, reason) checks over raw / parsed / typed names) for one column."""
    r = trimmed_name(contract, c)
    p = parsed_name(contract, c)
    checks: list[tuple[str, str]] = []
    if c.required:
        checks.append((f"{r} IS NULL", f"{c.name}: required field empty"))
    parse_failed = f"{r} IS NOT NULL AND {p} IS NULL"
    if c.type == "text":
        return r, p, checks
    if c.type == "code":
        cases = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in c.codes.items())
        checks.append((parse_failed, f"{c.name}: not one of {', '.join(c.codes)}"))
        return f"CASE {r} {cases} END", p, checks
    if c.type == "date":
        parts = [f"try_strptime({r}, {lit(DATE_FORMATS[f])})::DATE" for f in c.formats]
        fmts = " or ".join(HUMAN_FORMATS[f] for f in c.formats)
        checks.append((parse_failed, f"{c.name}: not a valid date in format {fmts}"))
        in_range = f"{p} BETWEEN DATE {lit(DATE_RANGE[0])} AND DATE {lit(DATE_RANGE[1])}"
        checks.append((f"NOT ({in_range})", f"{c.name}: date outside {DATE_RANGE[0][:4]}–{DATE_RANGE[1][:4]}"))
        parse = f"coalesce({', '.join(parts)})" if len(parts) > 1 else parts[0]
        return parse, f"CASE WHEN {in_range} THEN {p} END", checks
    if c.type == "month":
        checks.append((parse_failed, f"{c.name}: not a month YYYYMM"))
        return (f"CASE WHEN {digits_sql(r, 6)} THEN try_strptime({r} || '01', '%Y%m%d')::DATE END",
                p, checks)
    if c.type == "municipality":
        checks.append((parse_failed, f"{c.name}: not a municipality code of 1–3 digits"))
        return f"CASE WHEN {digits_sql(r, 1, 3)} THEN lpad({r}, 3, '0') END", p, checks
    if c.type == "boolean":
        checks.append((parse_failed, f"{c.name}: not true or false"))
        return f"CASE {r} WHEN 'true' THEN true WHEN 'false' THEN false END", p, checks
    if c.type in ("integer", "cents"):
        ok = digits_sql(r, c.digits) if c.digits else f"regexp_full_match({r}, '-?[0-9]+')"
        what = f"a number of {c.digits} digits" if c.digits else "a whole number"
        checks.append((parse_failed, f"{c.name}: not {what}"))
        parse = (f"CASE WHEN {ok} THEN TRY_CAST(TRY_CAST({r} AS DECIMAL(18, 0)) / 100 AS DECIMAL(14, 2)) END"
                 if c.type == "cents" else f"CASE WHEN {ok} THEN TRY_CAST({r} AS BIGINT) END")
    elif c.type == "decimal":
        sep = {",": ",", ".": r"\.", "any": "[.,]"}[c.decimal_separator]
        ok = f"regexp_full_match({r}, {lit(f'-?[0-9]+({sep}[0-9]+)?')})"
        shown = {",": "decimal comma", ".": "decimal point", "any": "decimal comma or point"}
        checks.append((parse_failed, f"{c.name}: not a number (with {shown[c.decimal_separator]})"))
        parse = f"CASE WHEN {ok} THEN TRY_CAST(replace({r}, ',', '.') AS DOUBLE) END"
    else:  # pragma: no cover - contract loading rejects unknown types
        raise ValueError(c.type)
    if c.minimum is not None or c.maximum is not None:
        lo = c.minimum if c.minimum is not None else "-1e308"
        hi = c.maximum if c.maximum is not None else "1e308"
        checks.append((f"{p} NOT BETWEEN {lo} AND {hi}", f"{c.name}: outside its range {c.minimum}–{c.maximum}"))
    if c.range_by:
        by = trimmed_name(contract, contract.column(c.range_by["column"]))
        for code, rng in c.range_by["ranges"].items():
            decimals = rng.get("decimals")
            cond = f"{p} NOT BETWEEN {rng['min']} AND {rng['max']}"
            if decimals is not None:
                cond += f" OR {p} <> round({p}, {decimals})"
            kind = "whole numbers" if decimals == 0 else f"at most {decimals} decimal(s)"
            checks.append((f"{by} = {lit(code)} AND ({cond})",
                           f"{c.name}: outside the {code} range {rng['min']}–{rng['max']} ({kind})"))
    return parse, p, checks


def validation_sql(contract: Contract, source: str) -> str:
    """SQL that types every row of ``source`` and gives each its first error (or NULL).

    Steps so that every value is trimmed and parsed once: trim the raw text (t0, t1, …),
    parse it (p0, p1, …), type it (the contract's names), then pick the first failing check.
    """
    parsed_cols, typed_cols, checks = [], [], [("id_error IS NOT NULL", None)]
    for c in contract.data_columns:
        parse, typed, col_checks = _column_sql(contract, c)
        parsed_cols.append(f"{parse} AS {parsed_name(contract, c)}")
        typed_cols.append(f"{typed} AS {q(c.target)}")
        checks.extend(col_checks)
    for rule in contract.rules:
        a, b = contract.column(rule["column"]), contract.column(rule["other"])
        if rule["rule"] == "not_before":
            checks.append((f"{q(a.target)} < {q(b.target)}", f"{a.name} is before {b.name}"))
        else:
            checks.append((f"{q(a.target)} > {q(b.target)}", f"{a.name} exceeds {b.name}"))
    cases = []
    for cond, reason in checks:
        if reason is None:
            cases.append(f"WHEN {cond} THEN {lit(contract.identifier + ': ')} || id_error")
        else:
            cases.append(f"WHEN coalesce({cond}, false) THEN {lit(reason)}")
    raw_cols = ", ".join(raw_name(contract, c) for c in contract.data_columns)  # hashed: see dedupe_sql
    trimmed = ", ".join(f"nullif(trim({raw_name(contract, c)}), '') AS {trimmed_name(contract, c)}"
                        for c in contract.data_columns)
    helpers = ", ".join(f"{trimmed_name(contract, c)}, {parsed_name(contract, c)}" for c in contract.data_columns)
    return f"""
        WITH trimmed AS (
            SELECT _line, pseudonym, birth_year, sex, temporary_id, id_error, hash({raw_cols}) AS raw_hash, {trimmed}
            FROM {source}
        ),
        parsed AS (SELECT *, {', '.join(parsed_cols)} FROM trimmed),
        typed AS (SELECT *, {', '.join(typed_cols)} FROM parsed)
        SELECT * EXCLUDE ({helpers}), CASE {' '.join(cases)} END AS reason FROM typed
    """


def _key_sql(contract: Contract) -> str:
    return ", ".join(q(k) for k in contract.key_columns())


def dedupe_sql(contract: Contract, rows: str) -> str:
    """For rows sharing a natural key: exact repeats load once (their repeats are quarantined);
    one key with different content quarantines all its rows. Only ``rows`` whose key occurs
    more than once need this, so the window work stays small.

    A line's content is its pseudonym and the 64-bit hash of its raw text fields (``raw_hash``),
    not the text itself: the delivery's raw columns need not be kept in DuckDB beside the typed
    ones (at a national first load, over half a gigabyte). Two different lines of one key would
    have to collide in 64 bits to be taken for repeats."""
    raws = "pseudonym, raw_hash"
    key = _key_sql(contract)
    key_names = ", ".join(contract.natural_key)
    return f"""
        WITH ranked AS (
            SELECT *, row_number() OVER w AS repeat_no, min(_line) OVER w AS first_line
            FROM {rows} WINDOW w AS (PARTITION BY {raws} ORDER BY _line)
        ),
        keyed AS (
            SELECT *, count(*) FILTER (WHERE repeat_no = 1) OVER (PARTITION BY {key}) AS versions,
                   string_agg(_line::VARCHAR, ', ' ORDER BY _line) OVER (PARTITION BY {key}) AS key_lines
            FROM ranked
        )
        SELECT _line,
            CASE
              WHEN versions > 1 THEN {lit(f'natural key ({key_names}) appears with different content on lines ')} || key_lines
              WHEN repeat_no > 1 THEN 'exact repeat of line ' || first_line
            END AS reason
        FROM keyed
    """


def validate_chunk(contract: Contract, chunk: pa.Table, con: duckdb.DuckDBPyConnection, first: bool) -> None:
    """Type and check one chunk of a delivery into the temp table ``checked``."""
    renamed = chunk.rename_columns([raw_name(contract, contract.column(n)) if n in
                                    {c.name for c in contract.columns} else n for n in chunk.column_names])
    con.register("delivery_rows", renamed)
    try:
        sql = validation_sql(contract, "delivery_rows")
        con.execute(f"CREATE OR REPLACE TEMP TABLE checked AS {sql}" if first else f"INSERT INTO checked {sql}")
    finally:
        con.unregister("delivery_rows")


def write_loaded(contract: Contract, con: duckdb.DuckDBPyConnection, rows_path: str, period: str,
                 withdrawn: str | None = None) -> tuple[int, pa.Table, int]:
    """Resolve natural-key repeats and conflicts in ``checked``, write the loaded rows to
    Parquet straight from DuckDB, and return (rows loaded, quarantined (line, reason), rows
    erased). With ``withdrawn`` (a relation of erasure tokens), the loaded rows of persons who
    have withdrawn their consent are counted as erased and never written."""
    targets = ", ".join(q(c.target) for c in contract.data_columns)
    key = _key_sql(contract)
    ids = "pseudonym, birth_year, sex, temporary_id"
    extra = ""
    if contract.consent:  # withdrawn rows keep only an erasure token, never the pseudonym
        w = q(contract.column(contract.consent["withdrawn"]).target)
        ids = ", ".join(f"CASE WHEN {w} IS NULL THEN {c} END AS {c}"
                        for c in ("pseudonym", "birth_year", "sex", "temporary_id"))
        extra = ", sha256(pseudonym) AS erasure_token"
    try:
        # rows whose key hashes to a value seen twice: every row sharing a key, and the odd hash
        # collision (harmless: the exact work below finds its key unique). Grouping one 64-bit
        # hash instead of the key's strings; most deliveries have none, and skip the rest.
        # A key with an empty part matches nothing (as in SQL equality): those rows all load.
        complete = " AND ".join(f"{q(k)} IS NOT NULL" for k in contract.key_columns())
        candidates = con.execute(f"""CREATE OR REPLACE TEMP TABLE shared_keys AS
            SELECT * FROM checked WHERE reason IS NULL AND {complete} AND hash({key}) IN (
                SELECT h FROM (SELECT hash({key}) AS h FROM checked WHERE reason IS NULL AND {complete})
                GROUP BY h HAVING count(*) > 1)""").fetchall()[0][0]
        if candidates:
            con.execute(f"CREATE OR REPLACE TEMP TABLE deduped AS {dedupe_sql(contract, 'shared_keys')}")
            con.execute("UPDATE checked SET reason = d.reason FROM deduped d "
                        "WHERE checked._line = d._line AND d.reason IS NOT NULL")
        passed = "reason IS NULL"
        erased, keep = 0, ""
        if withdrawn is not None and not contract.consent:  # sha256 of each distinct pseudonym, once
            con.execute(f"""CREATE OR REPLACE TEMP TABLE erase AS
                SELECT pseudonym FROM (SELECT DISTINCT pseudonym FROM checked WHERE reason IS NULL)
                WHERE sha256(pseudonym) IN (SELECT erasure_token FROM {withdrawn})""")
            erased = con.sql(f"SELECT count(*) FROM checked WHERE {passed} "
                             "AND pseudonym IN (SELECT pseudonym FROM erase)").fetchall()[0][0]
            keep = "AND pseudonym NOT IN (SELECT pseudonym FROM erase)" if erased else ""
        # in line order: ``checked`` was filled chunk by chunk in line order and DuckDB keeps insertion
        # order through a plain filter, so no sort is needed; erasing withdrawn persons (a join) writes
        # blocks out of order, so then the rows are sorted
        order = "ORDER BY _line" if keep else ""
        loaded = con.execute(f"""
            COPY (SELECT {ids}, {targets}, _line AS source_line{extra}, {lit(period)} AS delivery_period
                  FROM checked WHERE {passed} {keep} {order})
            TO {lit(rows_path)} (FORMAT parquet, COMPRESSION zstd)""").fetchall()[0][0]
        quarantined = con.sql(
            "SELECT _line AS line, reason FROM checked WHERE reason IS NOT NULL ORDER BY line").to_arrow_table()
    finally:
        con.execute("DROP TABLE IF EXISTS checked; DROP TABLE IF EXISTS shared_keys; DROP TABLE IF EXISTS deduped; "
                    "DROP TABLE IF EXISTS erase")
    return int(loaded), quarantined, int(erased)


DUCKDB_TYPES = {"text": "VARCHAR", "code": "VARCHAR", "municipality": "VARCHAR", "date": "DATE",
                "month": "DATE", "integer": "BIGINT", "cents": "DECIMAL(14, 2)", "decimal": "DOUBLE",
                "boolean": "BOOLEAN"}


def staging_columns(contract: Contract) -> list[tuple[str, str]]:
    """(name, DuckDB type) of a partner's staged rows, also when no delivery exists yet."""
    cols = [("pseudonym", "VARCHAR"), ("birth_year", "SMALLINT"), ("sex", "VARCHAR"),
            ("temporary_id", "BOOLEAN")]
    cols += [(c.target, DUCKDB_TYPES[c.type]) for c in contract.data_columns]
    cols += [("source_line", "BIGINT")]
    if contract.consent:
        cols += [("erasure_token", "VARCHAR")]
    cols += [("delivery_period", "VARCHAR")]
    return cols
