"""Delimited text (CSV-like): BOM, encodings, optional quoting, header row."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from schemas.contract import Contract
from schemas.readers import DeliveryRejected, ReadResult, check_columns, decode, text_table


def _parse(data: bytes, header: list[str], spec: dict, threads: bool) -> tuple[pa.Table, list[tuple]]:
    """Parse with pyarrow; malformed rows are collected as (line, expected, actual) fields."""
    bad_rows: list[tuple[int | None, int, int]] = []

    def on_invalid(row) -> str:  # row.text is never kept: it may hold an identity code
        bad_rows.append((row.number, row.expected_columns, row.actual_columns))
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(use_threads=threads, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=spec["delimiter"],
                quote_char='"' if spec.get("quoting") else False,
                double_quote=True, newlines_in_values=False, ignore_empty_lines=False,
                invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header}, strings_can_be_null=True,
                quoted_strings_can_be_null=True, null_values=[""]),
        )
    except (pa.ArrowInvalid, pa.ArrowException):  # message may quote content: replace it
        raise DeliveryRejected("the file cannot be parsed as delimited text with the agreed "
                               f"delimiter {spec['delimiter']!r}") from None
    return table, bad_rows


def read(contract: Contract, path: Path, period: str) -> ReadResult:
    spec = contract.file
    raw = path.read_bytes()
    text = decode(raw, contract.encoding)
    if text.startswith("\ufeff"):
        text = text[1:]  # BOM: the spec says utf-8 files carry one; one missing is tolerated
    if not text.strip():
        raise DeliveryRejected("the file is empty")
    # pyarrow parses UTF-8: a UTF-8 file is passed as is (less its BOM), others transcoded
    utf8 = contract.encoding.replace("_", "-").lower() in ("utf-8", "utf8")
    data = (raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw) if utf8 else text.encode("utf-8")
    first_line = text.split("\n", 1)[0].rstrip("\r")
    header = [h.strip().strip('"') if spec.get("quoting") else h.strip()
              for h in first_line.split(spec["delimiter"])]
    check_columns(contract, header)
    if len(set(header)) != len(header):
        raise DeliveryRejected("the header names a column twice")

    table, bad_rows = _parse(data, header, spec, threads=True)
    if any(n is None for n, _, _ in bad_rows):  # threaded parsing may not know a bad row's line
        table, bad_rows = _parse(data, header, spec, threads=False)

    # Physical line of every parsed row: lines 2.. minus those the parser skipped.
    bad_numbers = np.array(sorted(n for n, _, _ in bad_rows), dtype=np.int64)
    all_lines = np.arange(2, 2 + table.num_rows + len(bad_rows), dtype=np.int64)
    lines = np.setdiff1d(all_lines, bad_numbers, assume_unique=True)
    # Blank lines parse as all-null rows: not data records.
    keep = None
    for col in table.columns:
        valid = pc.is_valid(col)
        keep = valid if keep is None else pc.or_(keep, valid)
    if keep is not None and not pc.all(keep).as_py():
        mask = keep.to_numpy(zero_copy_only=False)
        table, lines = table.filter(keep), lines[mask]
    wanted = {c.name: table.column(c.name) if c.name in header else pa.nulls(table.num_rows, pa.string())
              for c in contract.columns}
    wanted = {k: v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v for k, v in wanted.items()}
    errors = [(n, f"expected {exp} fields, found {act}") for n, exp, act in bad_rows]
    return ReadResult(text_table(wanted, lines), errors)
